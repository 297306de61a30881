# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.openeuler.kae.plugins.modules import device_info


def test_reports_devices_engines_and_domains(run_module, kae_host, guest_uri):
    root = kae_host(vfs=2)
    result = run_module(device_info, {"sysfs_root": root, "uri": guest_uri}, check_mode=True)
    assert result["changed"] is False
    assert result["sysfs_root"] == root
    assert result["libvirt"] == {"available": True, "uri": guest_uri}
    domains = {d["bdf"]: d["domain"] for d in result["devices"] if d["function"] == "vf"}
    assert domains.pop("0000:75:00.2") == "guest1"
    assert set(domains.values()) == {None} and len(domains) == 11
    assert all(d["owner_known"] is True and "owner_error" not in d for d in result["devices"] if d["function"] == "vf")
    assert result["engines"]["zip"] == {"pfs": 2, "vfs": 4, "free_vfs": 3, "numa_nodes": [0, 2]}
    assert result["engines"]["sec"]["free_vfs"] == 4
    assert result["pf_q_num"] == {"zip": 64, "sec": 64, "hpre": 64}
    assert result["migration_drivers"] == ["hisi_acc_vfio_pci"]
    assert [d["bdf"] for d in result["devices"]] == sorted(d["bdf"] for d in result["devices"])
    json.dumps(result)  # facts must serialise


def test_libvirt_unreachable_is_a_note_not_a_failure(run_module, kae_host, unreachable_uri):
    result = run_module(device_info, {"sysfs_root": kae_host(vfs=1), "uri": unreachable_uri})
    assert result["libvirt"]["available"] is False and result["libvirt"]["assumed_unassigned"] is False
    reason = result["libvirt"]["reason"]
    assert "cannot connect to libvirt at %s" % unreachable_uri in reason
    assert len(result["devices"]) == 12
    vfs = [d for d in result["devices"] if d["function"] == "vf"]
    # Unknown is not free, and not absent: every VF says that its owner is unknown, and why.
    assert [(d["owner_known"], d["owner_error"], d["domain"], d["domains"]) for d in vfs] == [(False, reason, None, [])] * 6
    assert {engine: counts["free_vfs"] for engine, counts in result["engines"].items()} == {"zip": 0, "sec": 0, "hpre": 0}
    assert "warnings" not in result


def test_a_defined_domain_holds_its_vfs_too(run_module, kae_host, parked_uri):
    result = run_module(device_info, {"sysfs_root": kae_host(vfs=4), "uri": parked_uri})
    held = {d["bdf"]: d["domains"] for d in result["devices"] if d["function"] == "vf" and d["domains"]}
    assert held == {"0000:75:00.2": ["guest1", "parked"], "0000:75:00.3": ["parked"]}
    assert result["engines"]["zip"]["free_vfs"] == 6


def test_assume_unassigned_says_so(run_module, kae_host, unreachable_uri, monkeypatch):
    warnings = []
    monkeypatch.setattr(device_info.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    result = run_module(device_info, {"sysfs_root": kae_host(vfs=1), "uri": unreachable_uri, "assume_unassigned": True})
    assert result["libvirt"]["available"] is False and result["libvirt"]["assumed_unassigned"] is True
    assert all(d["owner_known"] is True and d["domains"] == [] for d in result["devices"] if d["function"] == "vf")
    assert result["engines"]["zip"]["free_vfs"] == 2
    assert len(warnings) == 1
    assert warnings[0].startswith("libvirt could not be asked which domains hold the KAE VFs (cannot connect to libvirt at ")
    assert warnings[0].endswith("assume_unassigned is set, so every VF is reported as held by no domain: nothing else on this host "
                                "may give VFs to guests")


def test_assume_unassigned_changes_nothing_when_libvirt_answers(run_module, kae_host, guest_uri, monkeypatch):
    warnings = []
    monkeypatch.setattr(device_info.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    result = run_module(device_info, {"sysfs_root": kae_host(vfs=2), "uri": guest_uri, "assume_unassigned": True})
    assert result["libvirt"] == {"available": True, "uri": guest_uri} and warnings == []
    assert [d["bdf"] for d in result["devices"] if d.get("domain") == "guest1"] == ["0000:75:00.2"]


def test_not_a_sysfs_tree_fails_with_the_fix(fail_module, tmp_path, empty_uri):
    result = fail_module(device_info, {"sysfs_root": str(tmp_path), "uri": empty_uri})
    assert result["msg"] == ("%s/bus/pci/devices does not exist: %s is not a sysfs tree; point sysfs_root at /sys "
                             "or at a sysfs-shaped copy" % (tmp_path, tmp_path))


def test_unreadable_tree_fails_with_the_path(fail_module, kae_host, empty_uri, deny_read):
    root = kae_host(vfs=0)
    deny_read("/revision")
    result = fail_module(device_info, {"sysfs_root": root, "uri": empty_uri})
    assert result["msg"].startswith("reading the KAE devices failed: cannot read %s/devices/" % root)
    assert result["msg"].endswith("/revision: Permission denied")


def test_a_tree_whose_links_leave_the_root_is_refused(fail_module, kae_host, empty_uri, tmp_path):
    root = kae_host(vfs=0)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "vendor").write_text("0x19e5\n")
    link = os.path.join(root, "bus/pci/devices/0000:75:00.0")
    os.unlink(link)
    os.symlink("../../../../elsewhere", link)
    result = fail_module(device_info, {"sysfs_root": root, "uri": empty_uri})
    assert result["msg"] == ("reading the KAE devices failed: %s leads outside the sysfs tree %s (a symlink or '..' leaves it); "
                             "refusing to follow it" % (link, root))


@pytest.mark.parametrize("params, message", [
    ({"sysfs_root": "/sys\x00/x"}, "sysfs_root (the root of a sysfs tree such as /sys) must not contain a NUL byte, got '/sys\\x00/x'"),
    ({"uri": "qemu:///system\x00"}, "uri (a libvirt connection URI such as qemu:///system) must not contain a NUL byte, got 'qemu:///system\\x00'"),
    ({"uri": ""}, "uri (a libvirt connection URI such as qemu:///system) must not be empty"),
    ({"assume_unassigned": "maybe"}, "argument 'assume_unassigned' is of type str and we were unable to convert to bool"),
])
def test_bad_options_are_a_sentence(fail_module, kae_host, empty_uri, params, message):
    args = {"sysfs_root": kae_host(vfs=0), "uri": empty_uri}
    args.update(params)
    assert fail_module(device_info, args)["msg"].startswith(message)
