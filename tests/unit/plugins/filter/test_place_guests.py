# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import copy
import random

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.lab import simsysfs
from ansible_collections.openeuler.kae.plugins.filter.place_guests import FilterModule
from ansible_collections.openeuler.kae.plugins.modules.device_info import gather
from ansible_collections.openeuler.kae.tests.unit.plugins.conftest import GUEST_NODE_XML

place_guests = FilterModule().filters()["place_guests"]


@pytest.fixture(scope="module")
def gathered(tmp_path_factory):
    """device_info results of three simulated Kunpeng 920 hosts (2 VFs per PF); on hv1 guest1 holds ZIP VF 0000:75:00.2."""
    pytest.importorskip("libvirt")
    base = tmp_path_factory.mktemp("fleet")
    node = base / "node.xml"
    node.write_text(GUEST_NODE_XML)
    results = {}
    for name, uri in (("hv1", "test://%s" % node), ("hv2", "test:///default"), ("hv3", "test:///default")):
        simsysfs.build(str(base / name), vfs=2)
        results[name] = gather(str(base / name), uri)
    return results


@pytest.fixture
def fleet(gathered):
    return copy.deepcopy(gathered)


def arguments(fleet):
    return {
        "guests": [{"name": "guest1", "host": "hv1", "memory_mib": 2048, "vcpus": 2, "vfs": ["0000:75:00.2"]},
                   {"name": "guest2", "host": "hv1", "memory_mib": 1024, "vcpus": 1, "pinned_node": 2, "request": {"sec": 1, "hpre": 1}}],
        "capacity": {"hv2": {"memory_mib": 8192, "vcpus": 8}, "hv3": {"memory_mib": 16384.0, "vcpus": 8}},
        "maintenance": ["hv1"],
    }


def test_plans_from_device_info_results(fleet):
    plan = place_guests(fleet, **arguments(fleet))
    assert plan["unplaced"] == []
    # guest2 holds more VFs, so it goes first, to hv3 (most free memory); with 15360 MiB left hv3 still beats hv2 (8192).
    assert plan["placements"] == [
        {"guest": "guest2", "source": "hv1", "destination": "hv3", "numa_node": 2, "vfs": ["0000:b6:00.1", "0000:b9:00.1"],
         "mapping": {}, "queue_classes_checked": False},
        {"guest": "guest1", "source": "hv1", "destination": "hv3", "numa_node": 0, "vfs": ["0000:75:00.2"],
         "mapping": {"0000:75:00.2": "0000:75:00.2"}, "queue_classes_checked": True},
    ]
    assert plan["incoming"] == {"hv3": ["guest2", "guest1"]}
    assert plan["classes"] == [["hv1", "hv2", "hv3"]]


def test_the_last_vf_of_a_pf_is_its_own_queue_class(fleet):
    # 0000:75:00.2 is the second and last VF of its PF: it carries the remainder of the queues, so on a destination
    # whose node-0 last ZIP VF is held, only node 2's last ZIP VF will do, never 0000:75:00.1.
    fleet["hv3"]["devices"] = [dict(d, domain="busy") if d["bdf"] == "0000:75:00.2" else d for d in fleet["hv3"]["devices"]]
    args = arguments(fleet)
    args["capacity"] = {"hv3": {"memory_mib": 8192, "vcpus": 8}}
    plan = place_guests(fleet, **args)
    assert [p["mapping"] for p in plan["placements"] if p["guest"] == "guest1"] == [{"0000:75:00.2": "0000:b5:00.2"}]


def test_libvirt_unreachable_means_no_free_vf(fleet, kae_host, unreachable_uri):
    fleet["hv2"] = gather(kae_host(vfs=2), unreachable_uri)
    del fleet["hv3"]
    plan = place_guests(fleet, guests=arguments(fleet)["guests"][:1], capacity={"hv2": {"memory_mib": 8192, "vcpus": 8}})
    assert plan["placements"] == []
    assert [r["hosts"] for r in plan["unplaced"][0]["reasons"]] == [["hv1"], ["hv2"]]
    assert plan["unplaced"][0]["reasons"][1]["reason"].startswith("libvirt could not be asked which domains hold its VFs")


def _set(path, value):
    def mutate(fleet, args):
        target = fleet if path[0] == "facts" else args
        for key in path[1:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _drop(path):
    def mutate(fleet, args):
        target = fleet if path[0] == "facts" else args
        for key in path[1:-1]:
            target = target[key]
        del target[path[-1]]
    return mutate


def _add_guest(fleet, args):
    args["guests"].append(dict(args["guests"][1]))


BAD_INPUTS = [
    (_drop(("facts", "hv2", "devices")), r"facts\['hv2'\] has no devices \(it is not a whole device_info result\); pass \{host: "),
    (_set(("facts", "hv2", "devices", 0, "numa_node"), "0"), r"facts\['hv2'\].devices\[0\].numa_node must be a whole number, got str '0'"),
    (_set(("facts", "hv2", "devices", 0, "bdf"), "75:00.0"), r"facts\['hv2'\].devices\[0\].bdf must be a PCI address DDDD:BB:SS.F"),
    (_set(("facts", "hv2", "devices", 0, "engine"), "aes"), r"facts\['hv2'\].devices\[0\].engine must be one of zip, sec, hpre, got str 'aes'"),
    (_set(("facts", "hv2", "devices", 1, "bdf"), "0000:75:00.0"), r"facts\['hv2'\].devices\[1\]: PCI address 0000:75:00.0 appears twice"),
    (_set(("facts", "hv2", "devices", 1, "owner_known"), "yes"), r"devices\[1\].owner_known must be true or false, got str"),
    (_set(("facts", "hv2", "devices", 1, "queue_class"), {"pf_q_num": "64"}), r"devices\[1\].queue_class.pf_q_num must be a whole number or null"),
    (_set(("facts", "hv2", "pf_q_num", "zip"), float("nan")), r"facts\['hv2'\].pf_q_num.zip must be a whole number, got float nan"),
    (_set(("facts", "hv2", "drivers", "hisi_qm", "srcversion"), 5), r"facts\['hv2'\].drivers\['hisi_qm'\].srcversion must be a string or null, got int 5"),
    (_set(("facts", "hv2", "migration_drivers"), "hisi_acc_vfio_pci"), r"facts\['hv2'\].migration_drivers must be a list, got str"),
    (_set(("facts", "hv2", "devices", 1, "domains"), "vm"), r"facts\['hv2'\].devices\[1\].domains must be a list, got str 'vm'"),
    (_drop(("facts", "hv2", "libvirt", "available")), r"facts\['hv2'\].libvirt.available must be true or false, got NoneType"),
    (_set(("args", "capacity", "hv2", "memory_mib"), "4096"), r"capacity\['hv2'\].memory_mib must be a number, got str '4096'; pass \{host: "),
    (_set(("args", "capacity", "hv2", "memory_mib"), float("nan")), r"capacity\['hv2'\].memory_mib must be a finite number, got nan"),
    (_set(("args", "capacity", "hv2", "vcpus"), -1), r"capacity\['hv2'\].vcpus must be at least 0, got -1"),
    (_set(("args", "capacity", "hv9"), {"memory_mib": 1, "vcpus": 1}), r"capacity\['hv9'\] names a host that is not in the facts"),
    (_set(("args", "capacity", "hv2", "memory"), 1), r"capacity\['hv2'\] has unknown keys memory; known keys are memory_mib, vcpus"),
    (_drop(("args", "capacity", "hv2", "vcpus")), r"capacity\['hv2'\] has no vcpus"),
    (_set(("args", "guests", 1, "name"), "guest1"), r"guests\[0\] and guests\[1\] are both named guest1; guest names are unique"),
    (_set(("args", "guests", 0, "name"), "a/b"), r"guests\[0\].name must be a libvirt domain name"),
    (_set(("args", "guests", 0, "host"), "hv9"), r"guests\[0\] \(guest1\).host is 'hv9', which is not in the facts"),
    (_set(("args", "guests", 0, "memory_mib"), "2048"), r"guests\[0\] \(guest1\).memory_mib must be a number, got str '2048'"),
    (_set(("args", "guests", 0, "vcpus"), 0), r"guests\[0\] \(guest1\).vcpus must be greater than 0, got 0"),
    (_set(("args", "guests", 0, "vcpus"), 2.5), r"guests\[0\] \(guest1\).vcpus must be a whole number, got float 2.5"),
    (_set(("args", "guests", 0, "memory_mib"), float("inf")), r"memory_mib must be a finite number, got inf"),
    (_set(("args", "guests", 0, "pinned_node"), "0"), r"guests\[0\] \(guest1\).pinned_node must be a whole number, got str '0'"),
    (_set(("args", "guests", 0, "pinned_nodes"), 0), r"guests\[0\] \(guest1\) has unknown keys pinned_nodes; known keys are name, host"),
    (_set(("args", "guests", 0, "request"), {"zip": 1}), r"guests\[0\] \(guest1\) needs exactly one of vfs .* and request"),
    (_drop(("args", "guests", 1, "request")), r"guests\[1\] \(guest2\) needs exactly one of vfs"),
    (_drop(("args", "guests", 1, "memory_mib")), r"guests\[1\] \(guest2\) has no memory_mib"),
    (_set(("args", "guests", 1, "request"), {"aes": 1}), r"guests\[1\] \(guest2\).request names engine 'aes'; known engines are zip, sec, hpre"),
    (_set(("args", "guests", 1, "request"), {"zip": "1"}), r"guests\[1\] \(guest2\).request\['zip'\] must be a whole number, got str '1'"),
    (_set(("args", "guests", 1, "request"), {"zip": 0}), r"guests\[1\] \(guest2\).request asks for no VF at all"),
    (_set(("args", "guests", 0, "vfs"), ["75:00.2"]), r"guests\[0\] \(guest1\).vfs\[0\] must be a PCI address DDDD:BB:SS.F such as 0000:75:00.1"),
    (_set(("args", "guests", 0, "vfs"), "0000:75:00.2"), r"guests\[0\] \(guest1\).vfs must be a list, got str"),
    (_set(("args", "guests", 0, "vfs"), ["0000:75:00.0"]), r"guests\[0\] \(guest1\).vfs\[0\]: 0000:75:00.0 is not a KAE VF of hv1"),
    (_set(("args", "guests", 0, "vfs"), []), r"guests\[0\] \(guest1\).vfs is empty"),
    (_set(("args", "guests", 0, "name"), "guest3"), r"guests\[0\] \(guest3\).vfs\[0\]: VF 0000:75:00.2 of hv1 belongs to domain guest1"),
    (_add_guest, r"guests\[1\] and guests\[2\] are both named guest2"),
    (_set(("args", "exclude"), ["hv9"]), r"exclude\[0\] names host 'hv9', which is not in the facts; pass a list of inventory host names"),
    (_set(("args", "maintenance"), "hv1"), r"maintenance must be a list, got str 'hv1'"),
    (_set(("args", "guests"), {"name": "guest1"}), r"guests must be a list, got dict"),
    (_set(("args", "capacity"), [1]), r"capacity must be a mapping, got list"),
]


@pytest.mark.parametrize("mutate, message", BAD_INPUTS)
def test_bad_input_names_the_field_and_the_form(fleet, mutate, message):
    args = arguments(fleet)
    mutate(fleet, args)
    with pytest.raises(AnsibleFilterError, match="^openeuler.kae.place_guests: .*" + message):
        place_guests(fleet, **args)


def test_a_vf_listed_for_two_guests(fleet):
    args = arguments(fleet)
    args["guests"][1] = dict(args["guests"][0], name="guest2")
    fleet["hv1"]["devices"] = [dict(d, domain=None, domains=[]) if d["bdf"] == "0000:75:00.2" else d for d in fleet["hv1"]["devices"]]
    with pytest.raises(AnsibleFilterError, match=r"guests\[1\] \(guest2\).vfs\[0\]: VF 0000:75:00.2 of hv1 is also listed for guest guest1"):
        place_guests(fleet, **args)


@pytest.mark.parametrize("facts", [None, "hv1", [], {"hv1": []}, {1: {}}])
def test_facts_that_are_no_mapping_of_results(facts):
    with pytest.raises(AnsibleFilterError, match="^openeuler.kae.place_guests: (facts|a host name).* must be"):
        place_guests(facts, guests=[], capacity={})


def test_guests_and_capacity_are_required(fleet):
    with pytest.raises(AnsibleFilterError, match="openeuler.kae.place_guests: guests and capacity are required"):
        place_guests(fleet, guests=[])


GARBAGE = [None, "", "x", "0", float("nan"), float("inf"), -1, 0, 1.5, 10 ** 30, True, [], {}, ["x"], {"x": 1}, [None], {"zip": None}]


def _paths(value, path=()):
    """Every place in VALUE (a dict/list tree) as a path of keys."""
    yield path
    if isinstance(value, dict):
        for key in list(value):
            yield from _paths(value[key], path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, path + (index,))


def test_random_damage_never_escapes_as_a_traceback(fleet):
    """Any value anywhere replaced by garbage or removed: a plan or an AnsibleFilterError, nothing else."""
    rng = random.Random(2024)
    pristine = {"facts": fleet, "args": arguments(fleet)}
    paths = [path for path in _paths(pristine) if len(path) > 1]
    outcomes = {"plan": 0, "refused": 0}
    for _round in range(600):
        tree = copy.deepcopy(pristine)
        for _change in range(rng.randint(1, 3)):
            path = rng.choice(paths)
            parent = tree
            try:
                for key in path[:-1]:
                    parent = parent[key]
                if rng.random() < 0.3 and isinstance(parent, dict):
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = copy.deepcopy(rng.choice(GARBAGE))
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change removed or replaced this place
        args = tree["args"]
        try:
            result = place_guests(tree["facts"], guests=args.get("guests"), capacity=args.get("capacity"),
                                  exclude=args.get("exclude"), maintenance=args.get("maintenance"))
        except AnsibleFilterError as exc:
            assert str(exc).startswith("openeuler.kae.place_guests: ")
            outcomes["refused"] += 1
        else:
            assert set(result) == {"placements", "unplaced", "incoming", "classes"}
            outcomes["plan"] += 1
    assert outcomes["refused"] > 300 and outcomes["plan"] > 20
