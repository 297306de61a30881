# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Queue classes of VFs (device facts) and the remap that keeps a VF in its class."""

from __future__ import annotations

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _devices, _queues
from ansible_collections.openeuler.kae.plugins.module_utils._remap import RemapError, plan
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs


def kernel_split(total, pf_q_num, num_vfs):
    """Queues of VF 1..NUM_VFS as the PF driver assigns them when no per-function maximum binds."""
    each, remainder = divmod(total - pf_q_num, num_vfs)
    return [each] * (num_vfs - 1) + [each + remainder]


def vfs_of(devices, pf):
    return sorted((d for d in devices if d["function"] == "vf" and d["pf"] == pf), key=lambda d: d["vf_index"])


def test_the_kernel_split_leaves_the_remainder_to_the_last_vf():
    assert kernel_split(1024, 64, 7) == [137] * 6 + [138]


def test_each_vf_gets_its_index_and_class(kae_host):
    devices = _devices.scan(Sysfs(kae_host(vfs=7, pf_q_num={"zip": 64, "sec": 128, "hpre": 64})))
    zip_vfs = vfs_of(devices, "0000:75:00.0")
    assert [vf["vf_index"] for vf in zip_vfs] == list(range(7))
    assert [vf["bdf"] for vf in zip_vfs] == ["0000:75:00.%d" % n for n in range(1, 8)]
    assert [vf["queue_class"]["last"] for vf in zip_vfs] == [False] * 6 + [True]
    assert {(vf["queue_class"]["pf_q_num"], vf["queue_class"]["num_vfs"]) for vf in zip_vfs} == {(64, 7)}
    assert {vf["queue_class"]["pf_q_num"] for vf in vfs_of(devices, "0000:76:00.0")} == {128}


def test_vfs_of_one_class_get_the_same_queue_count_and_of_two_classes_different_ones(kae_host):
    # The derived class partitions the VFs exactly as the kernel's split does (1024 queues, pf_q_num 64, 7 VFs).
    zip_vfs = vfs_of(_devices.scan(Sysfs(kae_host(vfs=7))), "0000:75:00.0")
    counts = kernel_split(1024, zip_vfs[0]["queue_class"]["pf_q_num"], zip_vfs[0]["queue_class"]["num_vfs"])
    for one in zip_vfs:
        for other in zip_vfs:
            assert _queues.same_class(one, other) == (counts[one["vf_index"]] == counts[other["vf_index"]])


def test_a_class_not_read_from_the_host_matches_nothing(kae_host, tmp_path):
    root = kae_host(vfs=2)
    (tmp_path / root / "module/hisi_zip/parameters/pf_q_num").unlink()
    zip_vf = next(d for d in _devices.scan(Sysfs(root)) if d["function"] == "vf" and d["engine"] == "zip")
    assert zip_vf["queue_class"] == {"pf_q_num": None, "num_vfs": 2, "last": False}
    assert not _queues.same_class(zip_vf, zip_vf)
    assert _queues.describe(zip_vf["queue_class"]) == "pf_q_num unknown, 2 VFs, not the last VF"
    assert _queues.describe(None).startswith("unknown queue class (no queue_class in the device facts")


# ------------------------------------------------------------------ remap

def guest(*bdfs):
    hostdevs = "".join("<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x%s' "
                       "slot='0x00' function='0x%s'/></source></hostdev>" % (b[5:7], b[11]) for b in bdfs)
    return "<domain type='kvm'><name>vm1</name><devices>%s</devices></domain>" % hostdevs


def facts(root, held=(), domain="other"):
    devices = _devices.scan(Sysfs(root))
    return _devices.assign_domains(devices, dict((bdf, domain) for bdf in held))


def test_a_vf_moves_only_to_a_vf_of_its_class(kae_host):
    # The guest holds zip VF 1 of 7 and the last sec VF; those addresses are taken on the destination.
    src = facts(kae_host(vfs=7), held=("0000:75:00.1", "0000:76:00.7"), domain="vm1")
    dst = facts(kae_host(vfs=7), held=("0000:75:00.1", "0000:76:00.7"))
    result = plan(guest("0000:75:00.1", "0000:76:00.7"), src, dst)
    # The sec VF goes to the other node's last VF, never to a free non-last VF of node 0; the zip VF follows it there.
    assert result == {"mapping": {"0000:75:00.1": "0000:b5:00.1", "0000:76:00.7": "0000:b6:00.7"}, "numa_node": 2, "remapped": True}


def test_a_free_address_on_a_pf_with_another_vf_count_is_not_kept(kae_host):
    src = facts(kae_host(vfs=7), held=("0000:75:00.7",), domain="vm1")
    dst_root = kae_host(vfs=7)
    # Node 0's zip PF of the destination gets 8 VFs: 0000:75:00.7 is free there, but it is VF 7 of 8.
    sysfs = Sysfs(dst_root)
    pf = _devices.read_pf(sysfs, "0000:75:00.0")
    _devices.apply_state(sysfs, pf, _devices.vf_state(sysfs, pf["bdf"]), 8, "hisi_acc_vfio_pci", 5)
    dst = facts(dst_root)
    assert next(d for d in dst if d["bdf"] == "0000:75:00.7")["queue_class"] == {"pf_q_num": 64, "num_vfs": 8, "last": False}
    result = plan(guest("0000:75:00.7"), src, dst)
    assert result == {"mapping": {"0000:75:00.7": "0000:b5:00.7"}, "numa_node": 2, "remapped": True}


def test_refusal_names_the_host_the_vf_and_both_classes(kae_host):
    src = facts(kae_host(vfs=7), held=("0000:75:00.7",), domain="vm1")
    dst = facts(kae_host(vfs=4))
    with pytest.raises(RemapError) as info:
        plan(guest("0000:75:00.7"), src, dst, destination="hv-b")
    message = str(info.value)
    assert message.startswith("the destination cannot host guest vm1: it needs 1 zip free VFs on one NUMA node of hv-b and ")
    assert ("zip VF 0000:75:00.7 is of queue class pf_q_num 64, 7 VFs, the last VF, and the destination hv-b has no free zip VF "
            "of that class (its free zip VFs by class: pf_q_num 64, 4 VFs, not the last VF: 0000:75:00.1, 0000:75:00.2, "
            "0000:75:00.3, 0000:b5:00.1, 0000:b5:00.2, 0000:b5:00.3; pf_q_num 64, 4 VFs, the last VF: 0000:75:00.4, "
            "0000:b5:00.4)") in message


def test_refused_when_the_pf_q_num_differs(kae_host):
    src = facts(kae_host(vfs=4), held=("0000:79:00.1",), domain="vm1")
    dst = facts(kae_host(vfs=4, pf_q_num={"zip": 64, "sec": 64, "hpre": 256}))
    with pytest.raises(RemapError, match=r"hpre VF 0000:79:00.1 is of queue class pf_q_num 64, 4 VFs, not the last VF, "
                                         r"and the destination has no free hpre VF of that class \(its free hpre VFs by class: "
                                         r"pf_q_num 256, 4 VFs, not the last VF: "):
        plan(guest("0000:79:00.1"), src, dst)


def test_facts_without_queue_classes_are_refused_not_trusted(kae_host):
    src = facts(kae_host(vfs=2), held=("0000:75:00.1",), domain="vm1")
    dst = [dict((k, v) for k, v in d.items() if k != "queue_class") for d in facts(kae_host(vfs=2))]
    with pytest.raises(RemapError, match=r"by class: unknown queue class \(no queue_class in the device facts"):
        plan(guest("0000:75:00.1"), src, dst)


def test_two_vfs_of_one_engine_in_two_classes_that_do_not_pair_up_are_refused(kae_host):
    src = facts(kae_host(vfs=4), held=("0000:75:00.3", "0000:75:00.4"), domain="vm1")
    # Node 0 of the destination has both classes but its last zip VF is taken; node 2 has none free.
    dst = facts(kae_host(vfs=4), held=("0000:75:00.4", "0000:b5:00.1", "0000:b5:00.2", "0000:b5:00.3", "0000:b5:00.4"))
    with pytest.raises(RemapError, match=r"the guest holds VFs of one engine in different queue classes \(0000:75:00.3: "
                                         r"pf_q_num 64, 4 VFs, not the last VF; 0000:75:00.4: pf_q_num 64, 4 VFs, the last VF\)"):
        plan(guest("0000:75:00.3", "0000:75:00.4"), src, dst)
