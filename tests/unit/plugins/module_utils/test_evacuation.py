# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import itertools
import random

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _evacuation

from ansible_collections.openeuler.kae.tests.unit.plugins.module_utils.test_placement import facts, one_of_each, room


def placement(guest, source="src", destination="d1"):
    return {"guest": guest, "source": source, "destination": destination, "vfs": [], "mapping": {}}


def check_limits(batches, per_source, per_destination, total):
    for batch in batches:
        assert len(batch) <= total
        for key, limit in (("source", per_source), ("destination", per_destination)):
            counts = {}
            for item in batch:
                counts[item[key]] = counts.get(item[key], 0) + 1
            assert max(counts.values()) <= limit, (key, batch)


# ---------------------------------------------------------------- batches

def test_one_source_is_limited_by_per_source():
    plan = [placement("vm%d" % index, destination="d%d" % (index % 3)) for index in range(5)]
    batches = _evacuation.batches(plan, per_source=2, per_destination=2, total=5)
    assert [[item["guest"] for item in batch] for batch in batches] == [["vm0", "vm1"], ["vm2", "vm3"], ["vm4"]]
    assert [item["batch"] for batch in batches for item in batch] == [1, 1, 2, 2, 3]


def test_one_destination_is_limited_by_per_destination():
    plan = [placement("vm%d" % index, source="s%d" % index, destination="d1") for index in range(3)]
    batches = _evacuation.batches(plan, per_source=5, per_destination=2, total=5)
    assert [len(batch) for batch in batches] == [2, 1]


def test_total_limits_a_batch_of_many_sources_and_destinations():
    plan = [placement("vm%d" % index, source="s%d" % index, destination="d%d" % index) for index in range(7)]
    assert [len(batch) for batch in _evacuation.batches(plan, 2, 2, 3)] == [3, 3, 1]


def test_first_fit_fills_an_earlier_batch_when_it_has_room():
    # vm2 cannot join batch 1 (d1 full) but vm3, to another destination, can.
    plan = [placement("vm0", destination="d1"), placement("vm1", source="s2", destination="d1"),
            placement("vm2", source="s3", destination="d1"), placement("vm3", source="s4", destination="d2")]
    batches = _evacuation.batches(plan, per_source=2, per_destination=2, total=5)
    assert [[item["guest"] for item in batch] for batch in batches] == [["vm0", "vm1", "vm3"], ["vm2"]]


def test_placements_are_kept_whole():
    plan = [dict(placement("vm0"), vfs=["0000:75:00.2"], mapping={"0000:75:00.1": "0000:75:00.2"}, numa_node=0)]
    assert _evacuation.batches(plan) == [[dict(plan[0], batch=1)]]
    assert "batch" not in plan[0]


def test_no_placement_gives_no_batch():
    assert _evacuation.batches([]) == []


@pytest.mark.parametrize("seed", range(30))
def test_random_plans_respect_every_limit_and_lose_no_guest(seed):
    rng = random.Random(seed)
    hosts = ["h%d" % index for index in range(rng.randint(2, 6))]
    plan = []
    for index in range(rng.randint(1, 40)):
        source, destination = rng.sample(hosts, 2)
        plan.append(placement("vm%d" % index, source, destination))
    limits = (rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 6))
    batches = _evacuation.batches(plan, *limits)
    check_limits(batches, *limits)
    flat = [item["guest"] for batch in batches for item in batch]
    assert sorted(flat) == sorted(item["guest"] for item in plan)
    assert batches == _evacuation.batches(plan, *limits)


def test_limit_of_one_everywhere_runs_one_at_a_time():
    plan = [placement("vm%d" % index, source="s%d" % index, destination="d%d" % index) for index in range(4)]
    assert [len(batch) for batch in _evacuation.batches(plan, 1, 1, 1)] == [1, 1, 1, 1]


@pytest.mark.parametrize("limits, where", [((0, 2, 5), "per_source"), ((2, "2", 5), "per_destination"), ((2, 2, 1.5), "total"),
                                           ((2, 2, True), "total"), ((2, 2, 1001), "total")])
def test_bad_limits_are_named(limits, where):
    with pytest.raises(_evacuation.EvacuationError, match=where):
        _evacuation.batches([placement("vm0")], *limits)


@pytest.mark.parametrize("plan, message", [
    ("vm0", "placements must be a list"),
    ([{"guest": "vm0", "source": "src"}], r"placements\[0\].destination must be a string"),
    ([placement("vm0"), placement("vm0", destination="d2")], "planned twice"),
])
def test_bad_placements_are_named(plan, message):
    with pytest.raises(_evacuation.EvacuationError, match=message):
        _evacuation.batches(plan)


# ---------------------------------------------------------------- plan

def hv_guest(name, memory_mib=1024, vcpus=1, vfs=(), pinned_node=None, host="src"):
    """A guest as openeuler.kae.hypervisor_info lists it."""
    return {"name": name, "host": host, "memory_mib": memory_mib, "vcpus": vcpus, "pinned_node": pinned_node, "vfs": list(vfs)}


def fleet(held=None):
    """A drained host src whose VFs are held as HELD says ({bdf: domain}) and two empty destinations."""
    return {"src": facts(taken=held or {}), "d1": facts(), "d2": facts()}


def test_kae_guests_move_and_the_others_stay():
    held = dict((bdf, "db1") for bdf in one_of_each())
    plan = _evacuation.plan(fleet(held), "src", [hv_guest("db1", vfs=one_of_each()), hv_guest("web1")], room(["src", "d1", "d2"]))
    assert [item["guest"] for item in plan["placements"]] == ["db1"]
    assert plan["placements"][0]["destination"] in ("d1", "d2") and len(plan["placements"][0]["vfs"]) == 3
    assert plan["staying"] == ["web1"] and plan["unplaced"] == []
    assert plan["moving"] == {"db1": {"vfs": sorted(one_of_each()), "kae": True}}


def test_vfs_the_facts_give_a_guest_count_as_held():
    # A lab guest holds no real VF: its simulated holdings are in the device facts only.
    held = {one_of_each()[0]: "db1"}
    plan = _evacuation.plan(fleet(held), "src", [hv_guest("db1")], room(["d1", "d2"]))
    assert plan["moving"]["db1"] == {"vfs": [one_of_each()[0]], "kae": True}
    assert len(plan["placements"][0]["vfs"]) == 1


def test_all_guests_places_the_others_on_what_the_kae_plan_leaves():
    held = dict((bdf, "db1") for bdf in one_of_each())
    capacity = {"d1": {"memory_mib": 5000, "vcpus": 4}, "d2": {"memory_mib": 4000, "vcpus": 4}}
    guests = [hv_guest("db1", memory_mib=3000, vfs=one_of_each()), hv_guest("web1", memory_mib=2500), hv_guest("web2", memory_mib=1500)]
    plan = _evacuation.plan(fleet(held), "src", guests, capacity, all_guests=True)
    where = dict((item["guest"], item["destination"]) for item in plan["placements"])
    # db1 takes d1 (most memory), leaving 2000 there: web1 (2500) must go to d2, web2 then to d1 (2000 > 1500 left on d2).
    assert where == {"db1": "d1", "web1": "d2", "web2": "d1"}
    assert plan["moving"]["web1"] == {"vfs": [], "kae": False}


def test_a_plain_guest_without_room_is_unplaced_with_its_need():
    plan = _evacuation.plan(fleet(), "src", [hv_guest("big", memory_mib=99999)], room(["src", "d1", "d2"]), all_guests=True, exclude=["d2"])
    assert plan["placements"] == [] and plan["unplaced"][0]["guest"] == "big"
    assert [(reason["reason"].split(":")[0], reason["hosts"]) for reason in plan["unplaced"][0]["reasons"]] == [
        ("the guest's own host", ["src"]), ("in maintenance or excluded", ["d2"]), ("not enough free memory or vCPUs", ["d1"])]
    assert "99999 MiB" in plan["unplaced"][0]["reasons"][2]["reason"]


def test_a_guest_with_a_foreign_pci_device_cannot_move():
    plan = _evacuation.plan(fleet(), "src", [hv_guest("nic1", vfs=["0000:03:00.0"])], room(["d1", "d2"]), all_guests=True)
    assert plan["placements"] == []
    assert "0000:03:00.0" in plan["unplaced"][0]["reasons"][0]["reason"]


def test_excluded_and_drained_hosts_receive_nothing():
    guests = [hv_guest("web%d" % index) for index in range(4)]
    plan = _evacuation.plan(fleet(), "src", guests, room(["src", "d1", "d2"]), all_guests=True, exclude=["d2"])
    assert set(item["destination"] for item in plan["placements"]) == {"d1"}


def test_an_empty_host_plans_nothing():
    assert _evacuation.plan(fleet(), "src", [], room(["d1"])) == {"placements": [], "unplaced": [], "moving": {}, "staying": []}


def test_the_same_input_in_any_order_gives_the_same_plan():
    held = dict((bdf, "db%d" % index) for index in (1, 2) for bdf in one_of_each(index=index))
    guests = [hv_guest("db1", vfs=one_of_each(index=1)), hv_guest("db2", vfs=one_of_each(index=2)), hv_guest("web1"), hv_guest("web2")]
    plans = [_evacuation.plan(fleet(held), "src", list(order), room(["d1", "d2"]), all_guests=True)
             for order in itertools.permutations(guests)]
    assert all(plan == plans[0] for plan in plans)
    # Spread: the two KAE guests go to different hosts.
    assert len(set(item["destination"] for item in plans[0]["placements"][:2])) == 2


@pytest.mark.parametrize("args, message", [
    (({}, "src", [], {}), "host 'src' is not in the facts"),
    ((fleet(), "src", [{"host": "src"}], {}), r"guests\[0\].name must be a string"),
    ((fleet(), "src", [hv_guest("a"), hv_guest("a")], room(["d1"]), True), "listed twice"),
    ((fleet(), "src", [hv_guest("a", memory_mib="1024")], room(["d1"]), True), r"guests\[0\].memory_mib must be a number"),
])
def test_bad_plan_input_is_named(args, message):
    with pytest.raises(_evacuation.EvacuationError, match=message):
        _evacuation.plan(*args)


def test_cpu_ratio_recomputes_free_vcpus_from_the_totals():
    capacity = {"d1": {"memory_mib": 8192, "vcpus": 0}, "d2": {"memory_mib": 4096, "vcpus": 0}}
    totals = {"d1": {"cpus": 2, "vcpus_used": 2, "memory_mib": 0}, "d2": {"cpus": 2, "vcpus_used": 3}}
    # One CPU per vCPU: no room anywhere; at 2x, d1 has 2 free and d2 1.
    assert _evacuation.plan(fleet(), "src", [hv_guest("web1")], capacity, all_guests=True)["placements"] == []
    plan = _evacuation.plan(fleet(), "src", [hv_guest("web1", vcpus=2)], capacity, all_guests=True, cpu_ratio=2, totals=totals)
    assert [item["destination"] for item in plan["placements"]] == ["d1"]
    assert _evacuation.overcommitted(capacity, totals, 2) == {"d1": {"memory_mib": 8192, "vcpus": 2}, "d2": {"memory_mib": 4096, "vcpus": 1}}
    assert _evacuation.overcommitted(capacity, None, 1) is capacity


@pytest.mark.parametrize("ratio, totals, message", [(0.5, {}, "cpu_ratio must be at least 1"), (2, None, "totals must be a mapping"),
                                                    (2, {"d1": {"cpus": "2", "vcpus_used": 0}}, r"totals\[d1\].cpus must be a whole number")])
def test_bad_cpu_ratio_input_is_named(ratio, totals, message):
    with pytest.raises(_evacuation.EvacuationError, match=message):
        _evacuation.overcommitted({"d1": {"memory_mib": 1, "vcpus": 0}}, totals, ratio)
