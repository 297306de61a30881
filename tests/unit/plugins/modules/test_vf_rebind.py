# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""vf_rebind on simulated trees: free VFs are probed again after a PF driver load, held ones are left and reported."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _rebind
from ansible_collections.openeuler.kae.plugins.modules import vf_rebind

ZIP_VFS = ["0000:75:00.1", "0000:75:00.2", "0000:b5:00.1", "0000:b5:00.2"]


def dmesg(root):
    path = os.path.join(root, "dmesg")
    return open(path).read() if os.path.exists(path) else ""


@pytest.fixture
def args(kae_host, tmp_path, guest_uri):
    """Module arguments for a tree with 2 VFs per PF, where domain guest1 holds the ZIP VF 0000:75:00.2."""
    return {"sysfs_root": kae_host(vfs=2), "uri": guest_uri, "record": str(tmp_path / "state" / "record.json"),
            "timeout_s": 5}


def test_after_a_load_free_vfs_are_rebound_and_the_held_one_is_reported(run_module, args):
    result = run_module(vf_rebind, dict(args, drivers=["hisi_zip"]))
    assert result["changed"] is True
    assert [event["pfs"] for event in result["events"]] == [["0000:75:00.0", "0000:b5:00.0"]]
    assert result["rebound"] == [{"vf": vf, "driver": "hisi_acc_vfio_pci"} for vf in ZIP_VFS if vf != "0000:75:00.2"]
    log = dmesg(args["sysfs_root"])
    for vf in ZIP_VFS:
        assert ("%s: unbound from hisi_acc_vfio_pci" % vf in log) == (vf != "0000:75:00.2")
    assert "0000:76:00.1" not in log, "only the reloaded driver's PFs"
    [held] = result["pending"]
    assert held["vf"] == "0000:75:00.2" and held["domain"] == "guest1" and held["pf"] == "0000:75:00.0"
    assert held["message"].startswith("VF 0000:75:00.2 may not migrate until rebound: PF 0000:75:00.0's driver hisi_zip was "
                                      "(re)loaded at %s, after the VF was bound; domain guest1 holds it, so it is left alone" % held["since"])
    assert json.load(open(args["record"]))["pending"] == {"0000:75:00.2": {"pf": "0000:75:00.0", "driver": "hisi_zip", "since": held["since"]}}


def test_the_held_vf_stays_owed_until_it_is_free(run_module, args, empty_uri):
    run_module(vf_rebind, dict(args, drivers=["hisi_zip"]))
    again = run_module(vf_rebind, args)
    assert again["changed"] is False and [p["vf"] for p in again["pending"]] == ["0000:75:00.2"]
    assert "0000:75:00.2: unbound" not in dmesg(args["sysfs_root"])
    released = run_module(vf_rebind, dict(args, uri=empty_uri))  # the guest has gone
    assert released["rebound"] == [{"vf": "0000:75:00.2", "driver": "hisi_acc_vfio_pci"}] and released["pending"] == []
    assert "0000:75:00.2: unbound from hisi_acc_vfio_pci" in dmesg(args["sysfs_root"])
    assert json.load(open(args["record"]))["pending"] == {}
    assert run_module(vf_rebind, dict(args, uri=empty_uri))["changed"] is False


def test_nothing_is_touched_while_libvirt_cannot_be_asked(run_module, args, unreachable_uri):
    result = run_module(vf_rebind, dict(args, drivers=["hisi_sec2"], uri=unreachable_uri))
    assert result["rebound"] == [] and len(result["pending"]) == 4
    assert "libvirt could not be asked whether a domain holds it (cannot connect to libvirt" in result["pending"][0]["message"]
    assert "unbound" not in dmesg(args["sysfs_root"])


def test_a_vf_whose_group_a_process_holds_open_is_left(run_module, args, tmp_path, monkeypatch):
    proc = tmp_path / "proc"
    group = os.path.basename(os.readlink(os.path.join(args["sysfs_root"], "bus/pci/devices/0000:79:00.1/iommu_group")))
    (proc / "4242" / "fd").mkdir(parents=True)
    os.symlink("/dev/vfio/%s" % group, str(proc / "4242" / "fd" / "7"))
    monkeypatch.setattr(_rebind, "PROC", str(proc))
    result = run_module(vf_rebind, dict(args, drivers=["hisi_hpre"]))
    assert [p["vf"] for p in result["pending"]] == ["0000:79:00.1"]
    assert "processes 4242 hold its IOMMU group /dev/vfio/%s open" % group in result["pending"][0]["message"]
    assert len(result["rebound"]) == 3


def test_check_mode_predicts_and_writes_nothing(run_module, args):
    result = run_module(vf_rebind, dict(args, drivers=["hisi_zip"]), check_mode=True)
    assert result["changed"] is True and len(result["rebound"]) == 3
    assert not os.path.exists(args["record"]) and "unbound" not in dmesg(args["sysfs_root"])


def test_vfs_gone_or_off_a_migration_driver_are_dropped(run_module, args, kae_host):
    args = dict(args, sysfs_root=kae_host(vfs=1, vf_driver="hisi_zip"))
    result = run_module(vf_rebind, dict(args, drivers=["hisi_zip"]))
    assert result["rebound"] == [] and result["dropped"] == ["0000:75:00.1", "0000:b5:00.1"]
    assert json.load(open(args["record"]))["pending"] == {}


def test_a_record_it_cannot_read_fails_without_touching_anything(fail_module, args):
    os.makedirs(os.path.dirname(args["record"]))
    with open(args["record"], "w") as handle:
        handle.write('{"pending": []}')
    result = fail_module(vf_rebind, dict(args, drivers=["hisi_zip"]))
    assert result["msg"] == ("%s is not a PF driver record of this collection (version 1 with events and pending); fix it rather "
                             "than delete it" % args["record"])
    assert "unbound" not in dmesg(args["sysfs_root"])


def test_unknown_driver_is_refused_by_its_choices(fail_module, args):
    assert "value of drivers must be one or more of: hisi_zip, hisi_sec2, hisi_hpre" in fail_module(vf_rebind, dict(args, drivers=["hisi_zip; reboot"]))["msg"]
