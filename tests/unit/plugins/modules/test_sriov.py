# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _devices, _hostlock
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs, SysfsError
from ansible_collections.openeuler.kae.plugins.modules import sriov

ZIP0 = "0000:75:00.0"
# Sysfs.write without the simulated kernel behind it (the kae_host fixture wraps it per test).
PLAIN_WRITE = Sysfs.write
AUTOPROBE = "bus/pci/devices/%s/sriov_drivers_autoprobe" % ZIP0


@pytest.fixture(autouse=True)
def lock_dir(tmp_path, monkeypatch):
    """The host lock of these tests lives in the test's directory, not in the machine's /run/lock."""
    path = str(tmp_path / "lock")
    monkeypatch.setattr(sriov, "LOCK_DIR", path, raising=False)
    return path


def args(root, libvirt, **extra):
    params = {"pf": ZIP0, "num_vfs": 4, "sysfs_root": root, "uri": libvirt, "timeout_s": 1}
    params.update(extra)
    return params


def state(root, pf=ZIP0):
    return _devices.vf_state(Sysfs(root), pf)


def kernel_log(root):
    if not os.path.exists(os.path.join(root, "dmesg")):
        return []
    with open(os.path.join(root, "dmesg")) as handle:
        return [line.split(" ", 1)[1].strip() for line in handle]


def snapshot(root):
    """Everything a refusal must leave alone: the PF's VFs and drivers, every VF's driver_override, autoprobe, the kernel log."""
    sysfs = Sysfs(root)
    vfs = state(root)
    overrides = dict((vf, sysfs.read("bus/pci/devices/%s/driver_override" % vf)) for vf in vfs["vfs"])
    return vfs, overrides, sysfs.read(AUTOPROBE), kernel_log(root)


def left_with(root, count, driver):
    return "PF %s is left with %d VFs (%s)" % (ZIP0, count, ", ".join("0000:75:00.%d: %s" % (n, driver) for n in range(1, count + 1)))


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


def watch_autoprobe(monkeypatch):
    """[(count written to sriov_numvfs, the PF's sriov_drivers_autoprobe at that moment)]."""
    seen = []
    write = Sysfs.write

    def recording(self, rel, value):
        if rel.endswith("/sriov_numvfs"):
            seen.append((value, self.read(rel.rsplit("/", 1)[0] + "/sriov_drivers_autoprobe")))
        write(self, rel, value)

    monkeypatch.setattr(Sysfs, "write", recording)
    return seen


def test_new_vfs_never_bind_to_the_host_driver_first(run_module, kae_host, empty_uri, monkeypatch):
    # openEuler 22.03: with autoprobe on, new VFs would bind to hisi_zip before vfio-pci.
    root = kae_host(vfs=0, migration_driver="vfio-pci")
    seen = watch_autoprobe(monkeypatch)
    result = run_module(sriov, args(root, empty_uri, num_vfs=3))
    assert result["changed"] is True and result["driver"] == "vfio-pci"
    assert state(root)["vfs"] == {"0000:75:00.%d" % n: "vfio-pci" for n in range(1, 4)}
    sysfs = Sysfs(root)
    assert sysfs.read("bus/pci/devices/0000:75:00.1/driver_override") == "vfio-pci"
    assert seen == [(3, "0")]
    assert not any("hisi_zip" in action for action in kernel_log(root)), kernel_log(root)
    # The value found is put back, and the PF keeps its host driver.
    assert sysfs.read(AUTOPROBE) == "1"
    assert sysfs.link_name("bus/pci/devices/%s/driver" % ZIP0) == "hisi_zip"
    assert run_module(sriov, args(root, empty_uri, num_vfs=3))["changed"] is False


def test_autoprobe_already_off_stays_off(run_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=2)
    PLAIN_WRITE(Sysfs(root), AUTOPROBE, 0)
    seen = watch_autoprobe(monkeypatch)
    assert run_module(sriov, args(root, empty_uri, num_vfs=3))["changed"] is True
    assert seen == [(0, "0"), (3, "0")] and Sysfs(root).read(AUTOPROBE) == "0"


def test_autoprobe_is_put_back_when_creating_fails(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=0)
    write = Sysfs.write

    def refuse_numvfs(self, rel, value):
        if rel.endswith("/sriov_numvfs"):
            raise SysfsError("cannot write %r to %s: Cannot allocate memory" % (str(value), self.path(rel)))
        write(self, rel, value)

    monkeypatch.setattr(Sysfs, "write", refuse_numvfs)
    result = fail_module(sriov, args(root, empty_uri, num_vfs=2))
    assert result["msg"] == ("setting 2 VFs on PF %s failed: cannot write '2' to %s/bus/pci/devices/%s/sriov_numvfs: Cannot allocate memory. "
                             "PF %s is left with 0 VFs" % (ZIP0, root, ZIP0, ZIP0))
    assert Sysfs(root).read(AUTOPROBE) == "1"


def test_driver_none_keeps_the_kernels_autoprobe(run_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=0)
    seen = watch_autoprobe(monkeypatch)
    run_module(sriov, args(root, empty_uri, num_vfs=1, driver="none"))
    assert seen == [(1, "1")] and state(root)["vfs"] == {"0000:75:00.1": "hisi_zip"}


def test_refuses_a_pf_without_sriov_drivers_autoprobe(fail_module, kae_host, empty_uri):
    root = kae_host(vfs=0)
    os.unlink(os.path.join(os.path.realpath(os.path.join(root, "bus/pci/devices", ZIP0)), "sriov_drivers_autoprobe"))
    before = snapshot(root)
    result = fail_module(sriov, args(root, empty_uri, num_vfs=2))
    assert result["msg"] == ("PF %s has no sriov_drivers_autoprobe, so its new VFs would bind to hisi_zip before hisi_acc_vfio_pci; "
                             "this kernel cannot create migratable VFs safely. Nothing was changed" % ZIP0)
    assert snapshot(root) == before


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
    ({}, {"num_vfs": -1}, "num_vfs must be at least 0, got -1"),
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


# ---------------------------------------------------------------- a VF a domain holds is never touched

def test_refuses_count_change_while_a_vf_is_assigned(fail_module, run_module, kae_host, guest_uri):
    root = kae_host(vfs=4)
    before = snapshot(root)
    result = fail_module(sriov, args(root, guest_uri, num_vfs=2))
    assert result["msg"] == ("cannot change the VF count from 4 to 2, which removes every VF of PF 0000:75:00.0: VF 0000:75:00.2 is held "
                             "by libvirt domain guest1; detach the VFs from those domains (or move the guests) first. Nothing was changed")
    assert snapshot(root) == before
    # Binding the same count is still allowed, and another PF is free to change.
    assert run_module(sriov, args(root, guest_uri))["changed"] is False
    assert run_module(sriov, args(root, guest_uri, pf="0000:b5:00.0", num_vfs=1))["changed"] is True


def test_refuses_to_rebind_a_vf_a_running_domain_holds(fail_module, kae_host, guest_uri):
    # The driver alone differs: the VFs would be unbound from hisi_zip and bound to hisi_acc_vfio_pci, under guest1's feet.
    root = kae_host(vfs=4, vf_driver="hisi_zip")
    before = snapshot(root)
    result = fail_module(sriov, args(root, guest_uri))
    assert result["msg"] == ("cannot rebind 0000:75:00.1, 0000:75:00.2, 0000:75:00.3, 0000:75:00.4 to hisi_acc_vfio_pci of PF 0000:75:00.0: "
                             "VF 0000:75:00.2 is held by libvirt domain guest1; detach the VFs from those domains (or move the guests) first. "
                             "Nothing was changed")
    assert snapshot(root) == before


def test_a_domain_that_is_only_defined_holds_its_vfs_too(fail_module, run_module, kae_host, parked_uri):
    root = kae_host(vfs=4)
    os.unlink(os.path.join(root, "bus/pci/devices/0000:75:00.3/driver"))   # the only VF that needs binding
    before = snapshot(root)
    result = fail_module(sriov, args(root, parked_uri))
    assert result["msg"].startswith("cannot rebind 0000:75:00.3 to hisi_acc_vfio_pci of PF 0000:75:00.0: VF 0000:75:00.3 is held by "
                                    "libvirt domain parked; detach")
    result = fail_module(sriov, args(root, parked_uri, num_vfs=0))
    assert "VF 0000:75:00.2 is held by libvirt domain guest1 and parked; VF 0000:75:00.3 is held by libvirt domain parked" in result["msg"]
    assert snapshot(root) == before


def test_rebinds_only_the_vfs_no_domain_holds(run_module, kae_host, guest_uri):
    # guest1's VF is already on the migration driver: only the others are rebound, and that is allowed.
    root = kae_host(vfs=3, vf_driver="hisi_zip")
    Sysfs(root).write("bus/pci/drivers/hisi_zip/unbind", "0000:75:00.2")
    Sysfs(root).write("bus/pci/devices/0000:75:00.2/driver_override", "hisi_acc_vfio_pci")
    Sysfs(root).write("bus/pci/drivers_probe", "0000:75:00.2")
    seen = len(kernel_log(root))
    assert run_module(sriov, args(root, guest_uri, num_vfs=3))["changed"] is True
    assert set(state(root)["vfs"].values()) == {"hisi_acc_vfio_pci"}
    assert kernel_log(root)[seen:] == ["0000:75:00.1: unbound from hisi_zip", "0000:75:00.1: probed, driver hisi_acc_vfio_pci",
                                       "0000:75:00.3: unbound from hisi_zip", "0000:75:00.3: probed, driver hisi_acc_vfio_pci"]


@pytest.mark.parametrize("build, params, action", [
    ({"vfs": 4}, {"num_vfs": 2}, "change the VF count from 4 to 2, which removes every VF"),
    ({"vfs": 2, "vf_driver": "hisi_zip"}, {"num_vfs": 2}, "rebind 0000:75:00.1, 0000:75:00.2 to hisi_acc_vfio_pci"),
])
def test_refuses_when_libvirt_cannot_be_asked(fail_module, run_module, kae_host, unreachable_uri, build, params, action):
    root = kae_host(**build)
    before = snapshot(root)
    result = fail_module(sriov, args(root, unreachable_uri, **params))
    assert result["msg"].startswith("cannot %s of PF 0000:75:00.0: that needs libvirt's word that no domain holds those VFs, and VF "
                                    "ownership could not be read (cannot connect to libvirt at %s" % (action, unreachable_uri))
    assert result["msg"].endswith("); start libvirtd or set uri. Nothing was changed")
    assert snapshot(root) == before
    # Creating VFs on a PF that has none touches no VF a domain could hold.
    assert run_module(sriov, args(kae_host(vfs=0), unreachable_uri))["changed"] is True


def test_without_libvirt_python_no_vf_is_removed_or_rebound(fail_module, run_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=4, vf_driver="hisi_zip")
    monkeypatch.setattr(_devices._libvirt, "HAS_LIBVIRT", False)
    before = snapshot(root)
    for params in ({"num_vfs": 2}, {}):
        result = fail_module(sriov, args(root, empty_uri, **params))
        assert result["msg"].startswith("Failed to import the required Python library (libvirt-python (python3-libvirt))")
        assert "of PF 0000:75:00.0 (only libvirt can tell that no domain holds those VFs)." in result["msg"]
    assert snapshot(root) == before
    assert run_module(sriov, args(kae_host(vfs=0), empty_uri, num_vfs=1))["changed"] is True


# ---------------------------------------------------------------- one play at a time

def test_waits_for_the_host_lock_and_gives_up(fail_module, run_module, kae_host, empty_uri, lock_dir):
    root = kae_host(vfs=4)
    before = snapshot(root)
    with _hostlock.host_lock("another play's openeuler.kae.sriov", 1, lock_dir=lock_dir):
        result = fail_module(sriov, args(root, empty_uri, num_vfs=2, timeout_s=0.2))
        assert result["msg"] == ("another openeuler.kae task holds %s/openeuler-kae.lock on this host (pid %d: another play's "
                                 "openeuler.kae.sriov) and did not release it within 0.2 s; wait for it to finish, or raise timeout_s"
                                 % (lock_dir, os.getpid()))
        assert snapshot(root) == before
        # Check mode writes nothing and takes no lock.
        assert run_module(sriov, args(root, empty_uri, num_vfs=2), check_mode=True)["changed"] is True
    assert run_module(sriov, args(root, empty_uri, num_vfs=2))["changed"] is True
    with open(os.path.join(lock_dir, "openeuler-kae.lock")) as handle:
        assert handle.read() == "pid %d: openeuler.kae.sriov on PF %s\n" % (os.getpid(), ZIP0)


# ---------------------------------------------------------------- the kernel does not follow

def test_kernel_refusing_the_count_times_out(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=4)
    monkeypatch.setattr(Sysfs, "write", PLAIN_WRITE)  # no kernel behind the tree any more
    result = fail_module(sriov, args(root, empty_uri, num_vfs=2, timeout_s=0.1))
    assert result["msg"] == ("PF 0000:75:00.0 still has 4 VFs 0.1 s after writing 0 to sriov_numvfs; check the kernel log (dmesg). "
                             + left_with(root, 4, "hisi_acc_vfio_pci"))


def fail_count(monkeypatch, *counts):
    """Writes of COUNTS to sriov_numvfs fail as the kernel fails them; every other write goes through."""
    write = Sysfs.write

    def failing(self, rel, value):
        if rel.endswith("/sriov_numvfs") and value in counts:
            raise SysfsError("cannot write %r to %s: Cannot allocate memory" % (str(value), self.path(rel)))
        write(self, rel, value)

    monkeypatch.setattr(Sysfs, "write", failing)


def test_a_count_change_failing_half_way_restores_the_previous_vfs(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=4)
    fail_count(monkeypatch, 6)
    result = fail_module(sriov, args(root, empty_uri, num_vfs=6))
    assert result["msg"] == ("setting 6 VFs on PF %s failed: cannot write '6' to %s/bus/pci/devices/%s/sriov_numvfs: Cannot allocate memory; "
                             "its previous 4 VFs were restored. %s" % (ZIP0, root, ZIP0, left_with(root, 4, "hisi_acc_vfio_pci")))
    assert state(root) == {"num_vfs": 4, "vfs": {"0000:75:00.%d" % n: "hisi_acc_vfio_pci" for n in range(1, 5)}}
    assert Sysfs(root).read(AUTOPROBE) == "1"


def test_restoring_the_previous_drivers_too(fail_module, kae_host, empty_uri, monkeypatch):
    # 22.03 style: the old VFs were on the host driver; the restored ones are put back there.
    root = kae_host(vfs=2, migration_driver="vfio-pci", vf_driver="hisi_zip")
    fail_count(monkeypatch, 3)
    result = fail_module(sriov, args(root, empty_uri, num_vfs=3))
    assert result["msg"].endswith("its previous 2 VFs were restored. " + left_with(root, 2, "hisi_zip"))


def test_when_restoring_fails_too_the_error_says_what_is_left(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=4)
    fail_count(monkeypatch, 2, 4)
    result = fail_module(sriov, args(root, empty_uri, num_vfs=2))
    assert result["msg"] == ("setting 2 VFs on PF {pf} failed: cannot write '2' to {root}/bus/pci/devices/{pf}/sriov_numvfs: Cannot allocate "
                             "memory; restoring its previous 4 VFs failed too: setting 4 VFs on PF {pf} failed: cannot write '4' to "
                             "{root}/bus/pci/devices/{pf}/sriov_numvfs: Cannot allocate memory. PF {pf} is left with 0 VFs"
                             .format(pf=ZIP0, root=root))


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
                             "Device or resource busy. %s" % (root, left_with(root, 4, "hisi_acc_vfio_pci")))


def test_driver_that_does_not_bind_times_out(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=1, vf_driver="hisi_zip")
    original = Sysfs.write

    def drop_probe(self, rel, value):
        if rel != "bus/pci/drivers_probe":
            original(self, rel, value)

    monkeypatch.setattr(Sysfs, "write", drop_probe)
    result = fail_module(sriov, args(root, empty_uri, num_vfs=1, timeout_s=0.1))
    assert result["msg"] == ("VF 0000:75:00.1 did not bind to hisi_acc_vfio_pci within 0.1 s (driver now: None); check dmesg. "
                             "PF 0000:75:00.0 is left with 1 VFs (0000:75:00.1: no driver)")


def test_driver_that_does_not_unbind_times_out(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=1, vf_driver="hisi_zip")
    original = Sysfs.write
    monkeypatch.setattr(Sysfs, "write", lambda self, rel, value: None if rel.endswith("/unbind") else original(self, rel, value))
    result = fail_module(sriov, args(root, empty_uri, num_vfs=1, timeout_s=0.1))
    assert result["msg"] == ("VF 0000:75:00.1 is still bound to hisi_zip 0.1 s after unbinding it; check dmesg. "
                             + left_with(root, 1, "hisi_zip"))


def test_binding_write_error(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=1, vf_driver="hisi_zip")
    refuse_writes(monkeypatch, "Permission denied")
    result = fail_module(sriov, args(root, empty_uri, num_vfs=1))
    assert result["msg"] == ("binding VF 0000:75:00.1 to hisi_acc_vfio_pci failed: cannot write '0000:75:00.1' to "
                             "%s/bus/pci/drivers/hisi_zip/unbind: Permission denied. %s" % (root, left_with(root, 1, "hisi_zip")))


def test_a_missing_attribute_is_never_created(fail_module, kae_host, empty_uri):
    root = kae_host(vfs=1, vf_driver="hisi_zip")
    override = os.path.join(os.path.realpath(os.path.join(root, "bus/pci/devices/0000:75:00.1")), "driver_override")
    os.unlink(override)
    result = fail_module(sriov, args(root, empty_uri, num_vfs=1))
    assert result["msg"].startswith("binding VF 0000:75:00.1 to hisi_acc_vfio_pci failed: cannot write 'hisi_acc_vfio_pci' to "
                                    "%s/bus/pci/devices/0000:75:00.1/driver_override: no such attribute (it is never created)" % root)
    assert not os.path.exists(override)


def test_a_pf_link_leading_out_of_the_tree_is_refused(fail_module, kae_host, empty_uri, tmp_path):
    root = kae_host(vfs=0)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sriov_numvfs").write_text("0\n")
    link = os.path.join(root, "bus/pci/devices", ZIP0)
    os.unlink(link)
    os.symlink("../../../../outside", link)
    result = fail_module(sriov, args(root, empty_uri, num_vfs=2))
    assert result["msg"] == "%s leads outside the sysfs tree %s (a symlink or '..' leaves it); refusing to follow it" % (link, root)
    assert (outside / "sriov_numvfs").read_text() == "0\n"


# ---------------------------------------------------------------- bad input: a sentence naming the option, nothing touched

@pytest.mark.parametrize("params, message", [
    ({"pf": "75:00.0"}, "pf must be a PCI address DDDD:BB:SS.F such as 0000:75:00.1, got '75:00.0'"),
    ({"pf": "0000:75:00.0/../../.."}, "pf must be a PCI address"),
    ({"pf": "0000:75:00.0\x00"}, "pf must not contain a NUL byte"),
    ({"pf": "0000:\u0667\u0665:00.0"}, "pf must be a PCI address"),
    ({"pf": ""}, "pf must not be empty"),
    ({"num_vfs": "1e100000000"}, "num_vfs must be a whole number written with the digits 0-9, got '1e100000000'"),
    ({"num_vfs": "\u0664"}, "num_vfs must be a whole number written with the digits 0-9, got '\u0664'"),
    ({"num_vfs": "inf"}, "num_vfs must be a whole number written with the digits 0-9, got 'inf'"),
    ({"num_vfs": "two"}, "num_vfs must be a whole number written with the digits 0-9"),
    ({"num_vfs": float("inf")}, "num_vfs must be a whole number, got inf"),
    ({"num_vfs": float("nan")}, "num_vfs must be a whole number, got nan"),
    ({"num_vfs": 2.5}, "argument 'num_vfs' is of type float and we were unable to convert to int"),
    ({"num_vfs": [2]}, "argument 'num_vfs' is of type list and we were unable to convert to int"),
    ({"num_vfs": None}, "argument 'num_vfs' is of type NoneType and we were unable to convert to int"),
    ({"num_vfs": True}, "num_vfs must be a whole number, got bool True"),
    ({"num_vfs": 70000}, "num_vfs must be at most 65535, got 70000"),
    ({"timeout_s": float("nan")}, "timeout_s must be a finite number, got nan"),
    ({"timeout_s": float("inf")}, "timeout_s must be a finite number, got inf"),
    ({"timeout_s": "nan"}, "timeout_s must be a finite number written with the digits 0-9 (such as 2.5 or 1e3), got 'nan'"),
    ({"timeout_s": "1e999"}, "timeout_s must be a finite number, got inf"),
    ({"timeout_s": "\u0661\u0660"}, "timeout_s must be a finite number written with the digits 0-9"),
    ({"timeout_s": 0}, "timeout_s must be greater than 0, got 0"),
    ({"timeout_s": -1}, "timeout_s must be greater than 0, got -1"),
    ({"timeout_s": 7200}, "timeout_s must be at most 3600, got 7200"),
    ({"timeout_s": "ten"}, "timeout_s must be a finite number written with the digits 0-9"),
    ({"sysfs_root": "/sys\x00"}, "sysfs_root (the root of a sysfs tree such as /sys) must not contain a NUL byte"),
    ({"uri": "qemu:///system\x00"}, "uri (a libvirt connection URI such as qemu:///system) must not contain a NUL byte"),
    ({"driver": "vfio"}, "value of driver must be one of: auto, hisi_acc_vfio_pci, vfio-pci, none, got: vfio"),
])
def test_bad_input_is_a_sentence_and_touches_nothing(fail_module, kae_host, empty_uri, params, message):
    root = kae_host(vfs=1, nodes=(0,))
    before = snapshot(root)
    result = fail_module(sriov, args(root, empty_uri, **dict({"num_vfs": 2}, **params)))
    assert result["msg"].startswith(message)
    assert snapshot(root) == before


@pytest.mark.parametrize("num_vfs, timeout_s", [("2", "5"), (" 2 ", "0.5"), (2, 5.0), ("2.0", "5e0")])
def test_numbers_as_text_are_accepted(run_module, kae_host, empty_uri, num_vfs, timeout_s):
    root = kae_host(vfs=4)
    assert run_module(sriov, args(root, empty_uri, num_vfs=num_vfs, timeout_s=timeout_s))["num_vfs"] == 2
    assert state(root)["num_vfs"] == 2
