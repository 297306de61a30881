# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

from ansible_collections.openeuler.kae.plugins.modules import device_info


def test_reports_devices_engines_and_domains(run_module, kae_host, guest_uri):
    root = kae_host(vfs=2)
    result = run_module(device_info, {"sysfs_root": root, "libvirt_uri": guest_uri}, check_mode=True)
    assert result["changed"] is False
    assert result["sysfs_root"] == root
    assert result["libvirt"] == {"available": True, "uri": guest_uri}
    domains = {d["bdf"]: d["domain"] for d in result["devices"] if d["function"] == "vf"}
    assert domains.pop("0000:75:00.2") == "guest1"
    assert set(domains.values()) == {None} and len(domains) == 11
    assert result["engines"]["zip"] == {"pfs": 2, "vfs": 4, "free_vfs": 3, "numa_nodes": [0, 2]}
    assert result["engines"]["sec"]["free_vfs"] == 4
    assert result["pf_q_num"] == {"zip": 64, "sec": 64, "hpre": 64}
    assert result["migration_drivers"] == ["hisi_acc_vfio_pci"]
    assert [d["bdf"] for d in result["devices"]] == sorted(d["bdf"] for d in result["devices"])
    json.dumps(result)  # facts must serialise


def test_libvirt_unreachable_is_a_note_not_a_failure(run_module, kae_host, unreachable_uri):
    result = run_module(device_info, {"sysfs_root": kae_host(vfs=1), "libvirt_uri": unreachable_uri})
    assert result["libvirt"]["available"] is False
    assert "cannot connect to libvirt at %s" % unreachable_uri in result["libvirt"]["reason"]
    assert len(result["devices"]) == 12
    assert all(d["domain"] is None for d in result["devices"] if d["function"] == "vf")


def test_not_a_sysfs_tree_fails_with_the_fix(fail_module, tmp_path, empty_uri):
    result = fail_module(device_info, {"sysfs_root": str(tmp_path), "libvirt_uri": empty_uri})
    assert result["msg"] == ("%s/bus/pci/devices does not exist: %s is not a sysfs tree; point sysfs_root at /sys "
                             "or at a sysfs-shaped copy" % (tmp_path, tmp_path))


def test_unreadable_tree_fails_with_the_path(fail_module, kae_host, empty_uri, monkeypatch):
    root = kae_host(vfs=0)
    real_open = open

    def deny_revision(path, *args, **kwargs):
        if str(path).endswith("/revision"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny_revision)
    result = fail_module(device_info, {"sysfs_root": root, "libvirt_uri": empty_uri})
    assert result["msg"].startswith("reading the KAE devices failed: cannot read %s/devices/" % root)
    assert result["msg"].endswith("/revision: Permission denied")
