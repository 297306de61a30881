# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _devices
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs, SysfsError
from ansible_collections.openeuler.kae.plugins.modules import sriov

ZIP0 = "0000:75:00.0"
# Sysfs.write without the simulated kernel behind it (the kae_host fixture wraps it per test).
PLAIN_WRITE = Sysfs.write


def args(root, uri, **extra):
    params = {"pf": ZIP0, "num_vfs": 4, "sysfs_root": root, "libvirt_uri": uri, "timeout_s": 1}
    params.update(extra)
    return params


def state(root, pf=ZIP0):
    return _devices.vf_state(Sysfs(root), pf)


def kernel_log(root):
    with open(os.path.join(root, "dmesg")) as handle:
        return [line.split(" ", 1)[1].strip() for line in handle]


def test_correct_state_is_unchanged(run_module, kae_host, empty_uri):
    root = kae_host()
    result = run_module(sriov, args(root, empty_uri), diff=True)
    assert result["changed"] is False
    assert result["diff"]["before"] == result["diff"]["after"]
    assert (result["pf"], result["engine"], result["driver"], result["num_vfs"]) == (ZIP0, "zip", "hisi_acc_vfio_pci", 4)
    assert result["vfs"] == {"0000:75:00.%d" % n: "hisi_acc_vfio_pci" for n in range(1, 5)}


def test_count_change_goes_through_zero_then_is_idempotent(run_module, kae_host, empty_uri):
    root = kae_host()
    result = run_module(sriov, args(root, empty_uri, num_vfs=2), diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"]["num_vfs"] == 4
    assert result["diff"]["after"] == {"num_vfs": 2, "vfs": {"0000:75:00.1": "hisi_acc_vfio_pci", "0000:75:00.2": "hisi_acc_vfio_pci"}}
    assert state(root) == result["diff"]["after"]
    actions = kernel_log(root)
    assert actions.index("%s: disabled 4 VFs" % ZIP0) < actions.index("%s: enabled 2 VFs" % ZIP0)
    assert not any("refused" in action for action in actions)
    assert run_module(sriov, args(root, empty_uri, num_vfs=2))["changed"] is False


def test_new_vfs_are_rebound_from_the_host_driver(run_module, kae_host, empty_uri):
    # openEuler 22.03: new VFs autoprobe to hisi_zip; they must end on vfio-pci via driver_override.
    root = kae_host(vfs=0, migration_driver="vfio-pci")
    result = run_module(sriov, args(root, empty_uri, num_vfs=3))
    assert result["changed"] is True and result["driver"] == "vfio-pci"
    assert state(root)["vfs"] == {"0000:75:00.%d" % n: "vfio-pci" for n in range(1, 4)}
    sysfs = Sysfs(root)
    assert sysfs.read("bus/pci/devices/0000:75:00.1/driver_override") == "vfio-pci"
    assert "0000:75:00.1: unbound from hisi_zip" in kernel_log(root)
    assert sysfs.link_name("bus/pci/devices/%s/driver" % ZIP0) == "hisi_zip"
    assert run_module(sriov, args(root, empty_uri, num_vfs=3))["changed"] is False


def test_rebinds_existing_vfs_only(run_module, kae_host, empty_uri):
    root = kae_host(vfs=2, vf_driver="hisi_zip")
    result = run_module(sriov, args(root, empty_uri, num_vfs=2, driver="hisi_acc_vfio_pci"), diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"]["vfs"] == {"0000:75:00.1": "hisi_zip", "0000:75:00.2": "hisi_zip"}
    assert state(root)["vfs"] == {"0000:75:00.1": "hisi_acc_vfio_pci", "0000:75:00.2": "hisi_acc_vfio_pci"}
    assert not any("VFs" in action for action in kernel_log(root) if action.startswith(ZIP0))


def test_driver_none_leaves_binding_to_the_kernel(run_module, kae_host, empty_uri):
    root = kae_host(vfs=0)
    result = run_module(sriov, args(root, empty_uri, num_vfs=2, driver="none"))
    assert result["changed"] is True and result["driver"] is None
    assert state(root)["vfs"] == {"0000:75:00.1": "hisi_zip", "0000:75:00.2": "hisi_zip"}


def test_check_mode_predicts_without_touching(run_module, kae_host, empty_uri):
    root = kae_host(vfs=4)
    result = run_module(sriov, args(root, empty_uri, num_vfs=6), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["after"] == {"num_vfs": 6, "vfs": {"0000:75:00.%d" % n: "hisi_acc_vfio_pci" for n in range(1, 7)}}
    assert result["vfs"] == result["diff"]["after"]["vfs"]
    assert state(root)["num_vfs"] == 4
    # The prediction is what the kernel then does.
    assert state(root) != result["diff"]["after"]
    run_module(sriov, args(root, empty_uri, num_vfs=6))
    assert state(root) == result["diff"]["after"]


def test_check_mode_without_offset_names_virtfns(run_module, kae_host, empty_uri):
    root = kae_host(vfs=0)
    os.unlink(os.path.join(os.path.realpath(os.path.join(root, "bus/pci/devices", ZIP0)), "sriov_offset"))
    result = run_module(sriov, args(root, empty_uri, num_vfs=2, driver="none"), check_mode=True)
    assert result["vfs"] == {ZIP0 + "/virtfn0": "hisi_zip", ZIP0 + "/virtfn1": "hisi_zip"}


def test_zero_removes_every_vf(run_module, kae_host, empty_uri):
    root = kae_host(vfs=3)
    assert run_module(sriov, args(root, empty_uri, num_vfs=0))["changed"] is True
    assert state(root) == {"num_vfs": 0, "vfs": {}}
    assert not Sysfs(root).exists("bus/pci/devices/0000:75:00.1")


def test_old_hardware_warns(run_module, kae_host, empty_uri, monkeypatch):
    warnings = []
    monkeypatch.setattr(sriov.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    run_module(sriov, args(kae_host(revision="0x21"), empty_uri))
    assert warnings == ["PF %s has revision 0x21: live migration needs revision 0x30 (QM v3) hardware, so its VFs will not migrate" % ZIP0]


# ---------------------------------------------------------------- refusals: nothing changes

@pytest.mark.parametrize("build, params, message", [
    ({}, {"pf": "0000:99:00.0"}, "PCI device 0000:99:00.0 does not exist under {root}/bus/pci/devices; list the KAE PFs with openeuler.kae.device_info"),
    ({}, {"pf": "0000:74:00.0"}, "PCI device 0000:74:00.0 (vendor 0x19e5, device 0xa121) is not a KAE accelerator; give the BDF of a ZIP, SEC or HPRE PF"),
    ({}, {"pf": "0000:75:00.3"}, "0000:75:00.3 is a zip VF, not a PF; give its PF 0000:75:00.0"),
    ({}, {"num_vfs": 64}, "PF 0000:75:00.0 supports at most 63 VFs (sriov_totalvfs), 64 requested"),
    ({}, {"num_vfs": -1}, "num_vfs must be 0 or more, got -1"),
    ({"pf_drivers": {("zip", 0): None}}, {},
     "PF 0000:75:00.0 (zip) is not bound to any driver, not hisi_zip: its VFs would silently lose live-migration support. "
     "Bind it to hisi_zip (modprobe hisi_zip; unbind it from its current driver, then write 0000:75:00.0 to "
     "bus/pci/drivers/hisi_zip/bind) and run again"),
    ({"pf_drivers": {("zip", 0): "vfio-pci"}}, {}, "PF 0000:75:00.0 (zip) is bound to vfio-pci, not hisi_zip: its VFs would silently lose"),
    ({"migration_driver": "vfio-pci"}, {"driver": "hisi_acc_vfio_pci"},
     "driver hisi_acc_vfio_pci is not loaded (no {root}/bus/pci/drivers/hisi_acc_vfio_pci): modprobe hisi_acc_vfio_pci first"),
])
def test_refusals(fail_module, kae_host, empty_uri, build, params, message):
    root = kae_host(**build)
    before = state(root)
    result = fail_module(sriov, args(root, empty_uri, **params))
    assert result["msg"].startswith(message.format(root=root))
    assert state(root) == before


def test_auto_without_any_migration_driver(fail_module, kae_host, empty_uri):
    root = kae_host(vfs=0, migration_driver=None)
    shutil.rmtree(os.path.join(root, "bus/pci/drivers/vfio-pci"))
    result = fail_module(sriov, args(root, empty_uri))
    assert result["msg"] == ("no VF migration driver is loaded (neither hisi_acc_vfio_pci nor vfio-pci under %s/bus/pci/drivers): "
                             "load hisi_acc_vfio_pci (openEuler 24.03) or vfio-pci and hisi_migration (openEuler 22.03)" % root)


def test_vfio_pci_needs_hisi_migration(fail_module, kae_host, empty_uri):
    # Neither driver named: auto falls back to vfio-pci, which migrates only with hisi_migration.
    root = kae_host(vfs=0, migration_driver=None)
    result = fail_module(sriov, args(root, empty_uri, driver="auto"))
    assert result["msg"] == ("VFs bound to vfio-pci migrate only with the hisi_migration module loaded, and %s/module/hisi_migration "
                             "is absent: modprobe hisi_migration (openEuler 22.03), or use hisi_acc_vfio_pci (openEuler 24.03)" % root)
    assert state(root)["num_vfs"] == 0


def test_refuses_count_change_while_a_vf_is_assigned(fail_module, run_module, kae_host, guest_uri):
    root = kae_host(vfs=4)
    result = fail_module(sriov, args(root, guest_uri, num_vfs=2))
    assert result["msg"] == ("cannot change the VF count of PF 0000:75:00.0 from 4 to 2: its VFs 0000:75:00.2 (domain guest1) are "
                             "assigned to libvirt domains; detach them or move those guests first")
    assert state(root)["num_vfs"] == 4
    # Binding the same count is still allowed, and another PF is free to change.
    assert run_module(sriov, args(root, guest_uri))["changed"] is False
    assert run_module(sriov, args(root, guest_uri, pf="0000:b5:00.0", num_vfs=1))["changed"] is True


def test_refuses_count_change_when_libvirt_cannot_be_asked(fail_module, run_module, kae_host, unreachable_uri):
    root = kae_host(vfs=4)
    result = fail_module(sriov, args(root, unreachable_uri, num_vfs=2))
    assert result["msg"].startswith("cannot change the VF count of PF 0000:75:00.0 from 4 to 2: removing its VFs needs proof that no "
                                    "domain holds one, and libvirt could not be asked (cannot connect to libvirt at %s" % unreachable_uri)
    assert result["msg"].endswith("); start libvirtd or set libvirt_uri")
    # Creating VFs on a PF that has none needs no libvirt.
    assert run_module(sriov, args(kae_host(vfs=0), unreachable_uri))["changed"] is True


def test_count_change_without_libvirt_python(fail_module, run_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=4, vf_driver="hisi_zip")
    monkeypatch.setattr(_devices._libvirt, "HAS_LIBVIRT", False)
    result = fail_module(sriov, args(root, empty_uri, num_vfs=2))
    assert result["msg"].startswith("Failed to import the required Python library (libvirt-python (python3-libvirt))")
    assert "This is required to change the VF count of PF 0000:75:00.0 (proving that no domain holds one of its VFs)." in result["msg"]
    assert state(root)["num_vfs"] == 4
    # Binding alone needs no libvirt.
    assert run_module(sriov, args(root, empty_uri))["changed"] is True
    assert set(state(root)["vfs"].values()) == {"hisi_acc_vfio_pci"}


# ---------------------------------------------------------------- the kernel does not follow

def test_kernel_refusing_the_count_times_out(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=4)
    monkeypatch.setattr(Sysfs, "write", PLAIN_WRITE)  # no kernel behind the tree any more
    result = fail_module(sriov, args(root, empty_uri, num_vfs=2, timeout_s=0.1))
    assert result["msg"] == ("PF 0000:75:00.0 still has 4 VFs 0.1 s after writing 0 to sriov_numvfs; check the kernel log (dmesg)")


def refuse_writes(monkeypatch, reason):
    """Every sysfs write fails as the kernel would fail it, with REASON."""
    def refuse(self, rel, value):
        raise SysfsError("cannot write %r to %s: %s" % (str(value), self.path(rel), reason))

    monkeypatch.setattr(Sysfs, "write", refuse)


def test_write_error_is_reported(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=4)
    refuse_writes(monkeypatch, "Device or resource busy")
    result = fail_module(sriov, args(root, empty_uri, num_vfs=2))
    assert result["msg"] == ("setting 0 VFs on PF 0000:75:00.0 failed: cannot write '0' to %s/bus/pci/devices/0000:75:00.0/sriov_numvfs: "
                             "Device or resource busy" % root)


def test_driver_that_does_not_bind_times_out(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=1, vf_driver="hisi_zip")
    original = Sysfs.write

    def drop_probe(self, rel, value):
        if rel != "bus/pci/drivers_probe":
            original(self, rel, value)

    monkeypatch.setattr(Sysfs, "write", drop_probe)
    result = fail_module(sriov, args(root, empty_uri, num_vfs=1, timeout_s=0.1))
    assert result["msg"] == "VF 0000:75:00.1 did not bind to hisi_acc_vfio_pci within 0.1 s (driver now: None); check dmesg"


def test_driver_that_does_not_unbind_times_out(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=1, vf_driver="hisi_zip")
    original = Sysfs.write
    monkeypatch.setattr(Sysfs, "write", lambda self, rel, value: None if rel.endswith("/unbind") else original(self, rel, value))
    result = fail_module(sriov, args(root, empty_uri, num_vfs=1, timeout_s=0.1))
    assert result["msg"] == "VF 0000:75:00.1 is still bound to hisi_zip 0.1 s after unbinding it; check dmesg"


def test_binding_write_error(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=1, vf_driver="hisi_zip")
    refuse_writes(monkeypatch, "Permission denied")
    result = fail_module(sriov, args(root, empty_uri, num_vfs=1))
    assert result["msg"] == ("binding VF 0000:75:00.1 to hisi_acc_vfio_pci failed: cannot write '0000:75:00.1' to "
                             "%s/bus/pci/drivers/hisi_zip/unbind: Permission denied" % root)
