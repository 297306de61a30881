# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _devices, _drivers, _placement, _queues

# PF bus per (engine, node), as on a Kunpeng 920: VF n of a PF is BUS:00.n (n from 1).
BUSES = {("zip", 0): "75", ("sec", 0): "76", ("hpre", 0): "79", ("zip", 2): "b5", ("sec", 2): "b6", ("hpre", 2): "b9"}
ALL = ("zip", "sec", "hpre")


def drivers(srcversion="5A1E2B7F9C0D3E4F5A6B7C8"):
    """device_info's drivers: every KAE module and hisi_acc_vfio_pci loaded, of one build."""
    loaded = _drivers.KAE_MODULES + ("hisi_acc_vfio_pci",)
    return dict((name, {"loaded": name in loaded, "builtin": False, "version": None, "srcversion": srcversion if name in loaded else None,
                        "taint": "" if name in loaded else None, "file": None, "origin": None, "file_srcversion": None})
                for name in _drivers.REPORTED_MODULES)


def facts(vfs=3, taken=(), pf_q_num=64, nodes=(0, 2), engines=ALL, available=True, srcversion="5A1E2B7F9C0D3E4F5A6B7C8", **vf_fields):
    """A device_info result: per node and engine a PF with VFS VFs; TAKEN maps a VF address to its domain."""
    taken = dict(taken) if isinstance(taken, dict) else dict((bdf, "other") for bdf in taken)
    quotas = pf_q_num if isinstance(pf_q_num, dict) else dict((engine, pf_q_num) for engine in engines)
    devices = []
    for (engine, node), bus in sorted(BUSES.items()):
        if node not in nodes or engine not in engines:
            continue
        pf = "0000:%s:00.0" % bus
        members = ["0000:%s:00.%d" % (bus, index + 1) for index in range(vfs)]
        devices.append({"bdf": pf, "engine": engine, "function": "pf", "numa_node": node, "driver": _devices.ENGINES[engine]["driver"],
                        "revision": "0x30", "migratable_hw": True, "sriov_totalvfs": 7, "sriov_numvfs": vfs, "vfs": members})
        for index, bdf in enumerate(members):
            vf = {"bdf": bdf, "engine": engine, "function": "vf", "numa_node": node, "driver": "hisi_acc_vfio_pci",
                  "revision": "0x30", "migratable_hw": True, "pf": pf, "domain": taken.get(bdf), "vf_index": index,
                  "owner_known": available, "domains": [taken[bdf]] if bdf in taken else [],
                  "queue_class": _queues.queue_class(quotas.get(engine), vfs, index)}
            vf.update(vf_fields.get(bdf, {}))
            devices.append(vf)
    return {"devices": devices, "pf_q_num": quotas, "libvirt": {"available": available, "uri": "qemu:///system"},
            "host": "kae-host", "kernel_release": "6.6.0-28.0.0.34.oe2403.aarch64", "drivers": drivers(srcversion),
            "migration_drivers": ["hisi_acc_vfio_pci"]}


def room(hosts, memory_mib=65536, vcpus=64):
    return dict((name, {"memory_mib": memory_mib, "vcpus": vcpus}) for name in hosts)


def guest(name, host="src", memory_mib=4096, vcpus=4, **needs):
    record = {"name": name, "host": host, "memory_mib": memory_mib, "vcpus": vcpus}
    record.update(needs)
    if "vfs" not in record and "request" not in record:
        record["request"] = {"zip": 1, "sec": 1, "hpre": 1}
    return record


def one_of_each(node=0, index=1):
    return ["0000:%s:00.%d" % (BUSES[(engine, node)], index) for engine in ALL]


def placed(plan):
    return dict((p["guest"], p) for p in plan["placements"])


def reasons(plan, name):
    entry = [u for u in plan["unplaced"] if u["guest"] == name]
    assert entry, "%s was placed: %s" % (name, placed(plan).get(name))
    return dict((r["reason"], r["hosts"]) for r in entry[0]["reasons"])


# ---------------------------------------------------------------- placements

def test_source_vfs_map_to_same_class_vfs_on_one_node():
    src_vfs = one_of_each(index=1)
    fleet = {"src": facts(taken=dict((bdf, "vm1") for bdf in src_vfs)), "dst": facts(taken=["0000:75:00.1"])}
    plan = _placement.plan(fleet, room(fleet), [guest("vm1", vfs=src_vfs)], maintenance=["src"])
    assert plan["unplaced"] == []
    # zip 75:00.1 is taken on dst: its class (not the last VF) continues at 75:00.2, never at 75:00.3 (the last VF).
    assert placed(plan)["vm1"] == {
        "guest": "vm1", "source": "src", "destination": "dst", "numa_node": 0,
        "vfs": ["0000:75:00.2", "0000:76:00.1", "0000:79:00.1"],
        "mapping": {"0000:75:00.1": "0000:75:00.2", "0000:76:00.1": "0000:76:00.1", "0000:79:00.1": "0000:79:00.1"},
        "queue_classes_checked": True,
    }
    assert plan["incoming"] == {"dst": ["vm1"]}
    assert plan["classes"] == [["dst", "src"]]


def test_last_vf_only_goes_to_a_last_vf():
    src_vfs = one_of_each(index=3)
    lasts = one_of_each(node=0, index=3) + one_of_each(node=2, index=3)
    fleet = {"src": facts(taken=dict((bdf, "vm1") for bdf in src_vfs)), "dst": facts(taken=lasts), "dst2": facts(taken=lasts[:3])}
    plan = _placement.plan(fleet, room(fleet), [guest("vm1", vfs=src_vfs), guest("vm2", vfs=one_of_each(index=1))],
                           maintenance=["src"])
    # dst has every last VF taken; dst2 still has node 2's.
    assert placed(plan)["vm1"]["destination"] == "dst2"
    assert placed(plan)["vm1"]["mapping"] == dict(zip(src_vfs, one_of_each(node=2, index=3)))
    assert placed(plan)["vm1"]["numa_node"] == 2


def test_the_queue_class_is_the_one_the_facts_give():
    cls = {"pf_q_num": 64, "num_vfs": 3, "last": False}
    odd = {"pf_q_num": 64, "num_vfs": 3, "last": True}
    src_vfs = ["0000:75:00.1"]
    fleet = {"src": facts(taken={"0000:75:00.1": "vm1"}),
             # dst says its first two zip VFs of node 0 are of another class, whatever their position.
             "dst": facts(**{"0000:75:00.1": {"queue_class": odd}, "0000:75:00.2": {"queue_class": odd},
                             "0000:75:00.3": {"queue_class": cls}})}
    plan = _placement.plan(fleet, room(fleet), [guest("vm1", vfs=src_vfs, pinned_node=0)], maintenance=["src"])
    assert placed(plan)["vm1"]["mapping"] == {"0000:75:00.1": "0000:75:00.3"}


def test_without_queue_classes_vfs_match_by_engine_and_the_plan_says_so():
    unknown = dict(("0000:75:00.%d" % n, {"queue_class": None}) for n in (1, 2, 3))
    fleet = {"src": facts(taken={"0000:75:00.3": "vm1"}, **unknown), "dst": facts(**unknown)}
    plan = _placement.plan(fleet, room(fleet), [guest("vm1", vfs=["0000:75:00.3"])], maintenance=["src"])
    assert placed(plan)["vm1"]["mapping"] == {"0000:75:00.3": "0000:75:00.1"}
    assert placed(plan)["vm1"]["queue_classes_checked"] is False


def test_request_guests_match_by_engine_and_say_classes_were_not_checked():
    fleet = {"src": facts(), "dst": facts(taken=["0000:75:00.1"])}
    plan = _placement.plan(fleet, room(fleet), [guest("vm1", request={"zip": 2})], maintenance=["src"])
    # By engine alone the last VF 75:00.3 qualifies too.
    assert placed(plan)["vm1"]["vfs"] == ["0000:75:00.2", "0000:75:00.3"]
    assert placed(plan)["vm1"]["mapping"] == {}
    assert placed(plan)["vm1"]["queue_classes_checked"] is False


def test_pinned_guest_gets_its_node_and_an_unpinned_one_its_vfs_node_first():
    fleet = {"src": facts(taken={"0000:b5:00.1": "vm2"}), "dst": facts()}
    guests = [guest("vm1", pinned_node=2), guest("vm2", vfs=["0000:b5:00.1"])]
    plan = _placement.plan(fleet, room(fleet), guests, maintenance=["src"])
    assert placed(plan)["vm1"]["numa_node"] == 2
    assert placed(plan)["vm2"]["numa_node"] == 2
    assert placed(plan)["vm2"]["mapping"] == {"0000:b5:00.1": "0000:b5:00.2"}


# ---------------------------------------------------------------- why a guest cannot move

def test_not_enough_vfs_of_an_engine_anywhere():
    fleet = {"src": facts(), "a": facts(vfs=3), "b": facts(vfs=3, taken=["0000:75:00.1"])}
    plan = _placement.plan(fleet, room(fleet), [guest("vm1", request={"zip": 4, "sec": 1})], maintenance=["src"])
    assert plan["placements"] == []
    assert reasons(plan, "vm1") == {
        "in maintenance: never a destination": ["src"],
        "not enough free VFs of zip on any one NUMA node: the guest needs 4, the most these hosts have is 3": ["a", "b"],
    }


def test_vfs_free_only_on_split_numa_nodes():
    # a: zip free only on node 0, hpre free only on node 2. b: pinned guest's node 2 lacks zip.
    lone = ["0000:%s:00.%d" % (bus, n) for bus in BUSES.values() for n in (2, 3)]
    fleet = {"src": facts(), "a": facts(taken=lone + ["0000:b5:00.1", "0000:79:00.1"]), "b": facts(taken=lone + ["0000:b5:00.1"])}
    guests = [guest("vm1", request={"zip": 1, "hpre": 1}), guest("vm2", request={"zip": 1}, pinned_node=2, memory_mib=1)]
    plan = _placement.plan(fleet, room(fleet), guests, maintenance=["src"], exclude=["b"])
    assert reasons(plan, "vm1") == {
        "in maintenance: never a destination": ["src"],
        "excluded: never a destination": ["b"],
        "enough free VFs in all, but not on one NUMA node: the guest needs 1 zip, 1 hpre together on one node "
        "(for example a has node 0: 1 zip, 0 hpre; node 2: 0 zip, 1 hpre)": ["a"],
    }
    assert reasons(plan, "vm2") == {
        "in maintenance: never a destination": ["src"],
        "excluded: never a destination": ["b"],
        "the guest is pinned to NUMA node 2, which lacks its free VFs (1 zip); other nodes have them: free VFs on node 2 "
        "or re-pin the guest": ["a"],
    }


@pytest.mark.parametrize("dst, difference", [
    (facts(pf_q_num={"zip": 128, "sec": 64, "hpre": 64}),
     "pf_q_num of zip differs: source 64, destination 128 (load hisi_zip with the same pf_q_num on both)"),
    (facts(vfs=4), "PF 0000:75:00.0: sriov_numvfs differs: source 3, destination 4"),
    (facts(engines=("zip", "sec")), "engine hpre is present on the source but not on the destination"),
    (facts(pf_q_num={"zip": 64, "sec": 64}),
     "pf_q_num of hpre is not known on the destination big (hisi_hpre does not show it), so its VFs' queue counts cannot be compared"),
    (facts(srcversion="0F0F0F0F0F0F0F0F0F0F0F0"),
     "hisi_qm differs: source kae-host srcversion 5A1E2B7F9C0D3E4F5A6B7C8 (kernel 6.6.0-28.0.0.34.oe2403.aarch64), destination kae-host "
     "srcversion 0F0F0F0F0F0F0F0F0F0F0F0 (kernel 6.6.0-28.0.0.34.oe2403.aarch64): run the same build of hisi_qm on both hosts"),
    (dict(facts(), drivers=None),
     "the KAE driver builds of the destination big are not known (its facts have no drivers), so they cannot be compared"),
])
def test_incompatible_hosts_are_never_used_and_the_difference_is_named(dst, difference):
    fleet = {"src": facts(), "big": dst, "small": facts()}
    capacity = room(fleet)
    capacity["small"] = {"memory_mib": 1024, "vcpus": 64}
    plan = _placement.plan(fleet, capacity, [guest("vm1")], maintenance=["src"])
    found = reasons(plan, "vm1")
    incompatible = [text for text in found if text.startswith("KAE set-up incompatible with the source src (checked against big")]
    assert len(incompatible) == 1 and difference in incompatible[0] and found[incompatible[0]] == ["big"]
    assert found["not enough free memory: the guest needs 4096 MiB, the most any of these hosts has free is 1024 MiB"] == ["small"]
    assert len(plan["classes"]) == 2


def test_memory_and_vcpu_bound_hosts():
    fleet = dict((name, facts()) for name in ("src", "a", "b", "c", "d"))
    capacity = {"a": {"memory_mib": 8191, "vcpus": 64}, "b": {"memory_mib": 8192, "vcpus": 3},
                "c": {"memory_mib": 8192.5, "vcpus": 4}, "d": {"memory_mib": 2000, "vcpus": 1}}
    plan = _placement.plan(fleet, capacity, [guest("vm1", memory_mib=8192, vcpus=4), guest("vm2", memory_mib=8192, vcpus=4)],
                           maintenance=["src"])
    assert placed(plan)["vm1"]["destination"] == "c"
    assert reasons(plan, "vm2") == {
        "in maintenance: never a destination": ["src"],
        "not enough free memory: the guest needs 8192 MiB, the most any of these hosts has free is 8191 MiB": ["a", "c", "d"],
        # c took vm1: 0.5 MiB and no vCPU left.
        "not enough free vCPUs: the guest needs 4, the most any of these hosts has free is 3": ["b", "c", "d"],
    }


def test_hosts_without_capacity_or_readable_owners_and_in_maintenance():
    fleet = {"src": facts(), "blind": facts(available=False), "unknown": facts(), "down": facts(),
             "ok": facts(taken=["0000:75:00.1", "0000:75:00.2", "0000:b5:00.1", "0000:b5:00.2"])}
    # src is not in maintenance here: it is open to guests, but not to its own.
    capacity = room(["src", "blind", "down", "ok"])
    plan = _placement.plan(fleet, capacity, [guest("vm1", request={"zip": 2})], maintenance=["down"])
    assert reasons(plan, "vm1") == {
        "the guest's own host": ["src"],
        "in maintenance: never a destination": ["down"],
        "no entry in capacity (free memory and vCPUs unknown): never a destination": ["unknown"],
        "libvirt could not be asked which domains hold its VFs, so none of them counts as free; read its facts again "
        "once libvirt answers": ["blind"],
        "not enough free VFs of zip on any one NUMA node: the guest needs 2, the most these hosts have is 1": ["ok"],
    }


def test_vfs_whose_owner_is_unknown_are_never_used():
    unknown = dict((bdf, {"owner_known": False}) for bdf in one_of_each(node=0, index=1) + one_of_each(node=2, index=1))
    fleet = {"src": facts(), "blind": facts(available=False), "half": facts(taken=one_of_each(0, 3) + one_of_each(2, 3), **unknown)}
    plan = _placement.plan(fleet, room(fleet), [guest("vm%d" % n) for n in range(3)], maintenance=["src"])
    used = [bdf for p in plan["placements"] for bdf in p["vfs"]]
    assert all(p["destination"] == "half" for p in plan["placements"])
    assert sorted(used) == sorted(one_of_each(node=0, index=2) + one_of_each(node=2, index=2))
    assert len(plan["unplaced"]) == 1


# ---------------------------------------------------------------- spread and determinism

def test_guests_spread_over_the_hosts_most_free_memory_first_ties_by_name():
    fleet = dict((name, facts(vfs=7)) for name in ("src", "h1", "h2", "h3", "h4"))
    capacity = room(["h1", "h2", "h3", "h4"], memory_mib=32768)
    capacity["h4"] = {"memory_mib": 40960, "vcpus": 64}
    plan = _placement.plan(fleet, capacity, [guest("vm%02d" % n, memory_mib=4096) for n in range(10)], maintenance=["src"])
    order = [p["destination"] for p in plan["placements"]]
    # h4 has 8 GiB more: it takes two guests before the others; then round robin by name.
    assert order == ["h4", "h4", "h1", "h2", "h3", "h4", "h1", "h2", "h3", "h4"]
    assert dict((host, len(names)) for host, names in plan["incoming"].items()) == {"h1": 2, "h2": 2, "h3": 2, "h4": 4}


def _random_fleet(rng, hosts=8, guests=30):
    """Random hosts (two set-ups, random occupancy, owners and capacity) and guests of all kinds, all valid."""
    fleet, capacity, records = {}, {}, []
    for index in range(hosts):
        name = "h%02d" % index
        vfs = rng.choice([2, 3, 3, 3])
        all_vfs = ["0000:%s:00.%d" % (bus, n + 1) for bus in BUSES.values() for n in range(vfs)]
        taken = dict((bdf, "other") for bdf in all_vfs if rng.random() < 0.3)
        unknown = dict((bdf, {"owner_known": False}) for bdf in all_vfs if rng.random() < 0.05)
        build = "5A1E2B7F9C0D3E4F5A6B7C8" if rng.random() < 0.9 else "0F0F0F0F0F0F0F0F0F0F0F0"
        fleet[name] = facts(vfs=vfs, taken=taken, available=rng.random() > 0.05, srcversion=build, **unknown)
        if rng.random() > 0.05:
            capacity[name] = {"memory_mib": rng.choice([2048, 8192, 16384, 65536]), "vcpus": rng.randint(2, 32)}
    sources = sorted(fleet)[:2]
    for index in range(guests):
        source = rng.choice(sources)
        record = guest("g%03d" % index, host=source, memory_mib=rng.choice([512, 1024, 4096]), vcpus=rng.randint(1, 4))
        del record["request"]
        free_here = [d["bdf"] for d in fleet[source]["devices"] if d["function"] == "vf" and d["domain"] is None]
        if rng.random() < 0.5 and free_here:
            node = rng.choice([0, 2])
            mine = [bdf for bdf in free_here if bdf[5:7] in [BUSES[(e, node)] for e in ALL]][:rng.randint(1, 3)]
            for device in fleet[source]["devices"]:
                if device["bdf"] in mine:
                    device["domain"] = record["name"]
            record["vfs"] = mine or free_here[:1]
            for device in fleet[source]["devices"]:
                if device["bdf"] in record["vfs"]:
                    device["domain"] = record["name"]
        else:
            record["request"] = dict((engine, rng.randint(0, 2)) for engine in ALL)
            record["request"]["zip"] = max(1, record["request"]["zip"])
        if rng.random() < 0.2:
            record["pinned_node"] = rng.choice([0, 2])
        records.append(record)
    return fleet, capacity, records, sources


def _free_vfs(host_facts):
    """{bdf: vf} of the VFs an independent reading of the facts calls free."""
    if not host_facts["libvirt"]["available"]:
        return {}
    return dict((d["bdf"], d) for d in host_facts["devices"]
                if d["function"] == "vf" and _devices.is_free(d) and d.get("owner_known", True))


def _last(host_facts, bdf):
    pf = [d for d in host_facts["devices"] if d["function"] == "pf" and bdf in d["vfs"]][0]
    return pf["vfs"][-1] == bdf


def _compatible(src, dst):
    return _devices.parity(src, dst) == [] and _drivers.parity(src, dst)[0] == []


def _check_plan(fleet, capacity, records, plan, excluded, maintenance):
    """Every property a plan must have, checked from the input alone."""
    by_name = dict((r["name"], r) for r in records)
    used = {}
    load = dict((name, [0, 0]) for name in fleet)
    for move in plan["placements"]:
        record, dst = by_name[move["guest"]], move["destination"]
        assert dst != record["host"] and dst not in excluded and dst not in maintenance and dst in capacity
        assert _compatible(fleet[record["host"]], fleet[dst])
        free = _free_vfs(fleet[dst])
        for bdf in move["vfs"]:
            assert (dst, bdf) not in used, "VF %s of %s given to %s and %s" % (bdf, dst, used.get((dst, bdf)), move["guest"])
            used[(dst, bdf)] = move["guest"]
            assert bdf in free and free[bdf]["numa_node"] == move["numa_node"]
        if record.get("pinned_node") is not None:
            assert move["numa_node"] == record["pinned_node"]
        engines = sorted(free[bdf]["engine"] for bdf in move["vfs"])
        if "vfs" in record:
            assert sorted(move["mapping"]) == sorted(record["vfs"])
            for src, bdf in move["mapping"].items():
                assert free[bdf]["engine"] == [d for d in fleet[record["host"]]["devices"] if d["bdf"] == src][0]["engine"]
                assert _last(fleet[dst], bdf) == _last(fleet[record["host"]], src)
        else:
            assert engines == sorted(e for e, n in record["request"].items() for _i in range(n))
        load[dst][0] += record["memory_mib"]
        load[dst][1] += record["vcpus"]
    for name, (memory, vcpus) in load.items():
        if memory:
            assert memory <= capacity[name]["memory_mib"] and vcpus <= capacity[name]["vcpus"]
    assert sorted([p["guest"] for p in plan["placements"]] + [u["guest"] for u in plan["unplaced"]]) == sorted(by_name)
    for entry in plan["unplaced"]:
        assert set(h for r in entry["reasons"] for h in r["hosts"]) == set(fleet)
    return used, load


def _fits_at_the_end(fleet, capacity, record, used, load, excluded, maintenance):
    """Hosts that could still take RECORD after the plan (there must be none for an unplaced guest)."""
    found = []
    src = fleet[record["host"]]
    wanted = {}
    if "vfs" in record:
        for bdf in record["vfs"]:
            device = [d for d in src["devices"] if d["bdf"] == bdf][0]
            key = (device["engine"], _last(src, bdf))
            wanted[key] = wanted.get(key, 0) + 1
    for name in sorted(capacity):
        if name == record["host"] or name in excluded or name in maintenance or not _compatible(src, fleet[name]):
            continue
        if capacity[name]["memory_mib"] - load[name][0] < record["memory_mib"] or capacity[name]["vcpus"] - load[name][1] < record["vcpus"]:
            continue
        free = dict((bdf, vf) for bdf, vf in _free_vfs(fleet[name]).items() if (name, bdf) not in used)
        nodes = [record["pinned_node"]] if record.get("pinned_node") is not None else [0, 2]
        for node in nodes:
            here = [vf for vf in free.values() if vf["numa_node"] == node]
            if "vfs" in record:
                ok = all(len([vf for vf in here if (vf["engine"], _last(fleet[name], vf["bdf"])) == key]) >= n for key, n in wanted.items())
            else:
                ok = all(len([vf for vf in here if vf["engine"] == e]) >= n for e, n in record["request"].items())
            if ok:
                found.append(name)
    return found


@pytest.mark.parametrize("seed", range(40))
def test_random_fleets_never_give_a_vf_twice_and_respect_every_constraint(seed):
    rng = random.Random(seed)
    fleet, capacity, records, sources = _random_fleet(rng)
    excluded = [name for name in sorted(fleet) if rng.random() < 0.1]
    plan = _placement.plan(fleet, capacity, records, exclude=excluded, maintenance=sources)
    used, load = _check_plan(fleet, capacity, records, plan, excluded, sources)
    by_name = dict((r["name"], r) for r in records)
    for entry in plan["unplaced"]:
        assert _fits_at_the_end(fleet, capacity, by_name[entry["guest"]], used, load, excluded, sources) == []


def test_random_fleets_both_place_and_refuse_guests():
    """The property test above means something only when its plans place many guests and refuse some."""
    placed_total = unplaced_total = 0
    for seed in range(40):
        fleet, capacity, records, sources = _random_fleet(random.Random(seed))
        plan = _placement.plan(fleet, capacity, records, maintenance=sources)
        placed_total += len(plan["placements"])
        unplaced_total += len(plan["unplaced"])
    assert placed_total > 40 * 30 // 3 and unplaced_total > 40 * 30 // 10


def test_same_input_same_plan_whatever_the_order():
    fleet, capacity, records, sources = _random_fleet(random.Random(7), hosts=10, guests=40)
    first = _placement.plan(fleet, capacity, records, maintenance=sources)
    shuffled = list(records)
    random.Random(1).shuffle(shuffled)
    names = sorted(fleet, reverse=True)
    again = _placement.plan(dict((n, fleet[n]) for n in names), dict(reversed(list(capacity.items()))), shuffled,
                            maintenance=list(reversed(sources)))
    assert again == first
    assert json.dumps(first, sort_keys=False) == json.dumps(again, sort_keys=False)


def test_same_plan_under_another_hash_seed(tmp_path):
    fleet, capacity, records, sources = _random_fleet(random.Random(11), hosts=10, guests=40)
    (tmp_path / "input.json").write_text(json.dumps([fleet, capacity, records, sources]))
    script = ("import json, sys\n"
              "from ansible_collections.openeuler.kae.plugins.module_utils import _placement\n"
              "fleet, capacity, records, sources = json.load(open(sys.argv[1]))\n"
              "print(json.dumps(_placement.plan(fleet, capacity, records, maintenance=sources)))\n")
    outputs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=os.pathsep.join(sys.path))
        run = subprocess.run([sys.executable, "-c", script, str(tmp_path / "input.json")], env=env, capture_output=True, text=True, check=True)
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["placements"]


# ---------------------------------------------------------------- signatures and compatibility

def test_signature_groups_hosts_that_parity_calls_equal():
    fleet = {"a": facts(taken=["0000:75:00.1"]), "b": facts(), "c": facts(vfs=2), "d": facts(vfs=2, taken=["0000:b9:00.1"]),
             "e": facts(srcversion="0F0F0F0F0F0F0F0F0F0F0F0")}
    plan = _placement.plan(fleet, {}, [guest("vm1", host="a")])
    assert plan["classes"] == [["a", "b"], ["c", "d"], ["e"]]
    assert _compatible(fleet["a"], fleet["b"]) and _compatible(fleet["c"], fleet["d"])
    assert not _compatible(fleet["a"], fleet["c"]) and not _compatible(fleet["a"], fleet["e"])


@pytest.mark.parametrize("seed", range(5))
def test_hosts_of_one_class_compare_alike_with_every_host(seed):
    fleet = _random_fleet(random.Random(seed), hosts=12, guests=1)[0]
    hosts, _guests = _placement.read_input(fleet, {}, [])
    classes = _placement.Classes(hosts)
    assert len(classes.members) > 1
    for members in classes.members:
        for host in members[1:]:
            for other in hosts.values():
                assert bool(_placement.differences(members[0], other)) == bool(_placement.differences(host, other))
                assert bool(_placement.differences(other, members[0])) == bool(_placement.differences(other, host))
