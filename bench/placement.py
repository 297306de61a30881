# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Benchmark: planning a fleet evacuation with the logic of openeuler.kae.place_guests.

Generated input at 1 %, 10 % and 100 % of 1,000 hosts and 10,000 guests, every size with the same proportions:
two NUMA nodes per host, three engines, 8-16 VFs per engine and node (three hardware set-ups, so three classes of
compatible hosts; one host in fifty, none being drained, already runs another hisi_zip build: classes of their own), about a quarter of the VFs
held by other domains, libvirt unreadable on 1 % of the hosts,
free memory 16-512 GiB and 16-160 free vCPUs; 10 % of the hosts in maintenance hold the guests to move, 1 % are
excluded. Guests: 1-3 VFs (40 % given by the VFs they hold, the others by a request), 10 % pinned to a node,
1-32 GiB, 1-8 vCPUs, and one in 500 asking for more memory than any host has (they cannot move: the cost of
their reasons shows too).

It prints, per size, the CPU time of the process to check the input (and build the hosts' VF pools) and of the
whole plan, the wall-clock time of the plan (which the load of a shared machine inflates), each the median of
several runs, and beside the ratio of CPU times between sizes the ratio of guests x log2(hosts). Then, as a
measure of work that no other load on the machine changes, the Python function calls of one plan, split into
the input checks, the search (choosing and placing) and the reasons of the guests that cannot move. It is a measurement, not a test:
nothing passes or fails on time; it exits non-zero only when a plan gives a VF twice (then the figures mean
nothing).

    .venv/bin/python bench/placement.py [--seed N] [--full-runs N]
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import random
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL_HOSTS = 1000
FULL_GUESTS = 10000
ENGINES = ("zip", "sec", "hpre")
BUSES = {("zip", 0): 0x75, ("sec", 0): 0x76, ("hpre", 0): 0x79, ("zip", 1): 0xb5, ("sec", 1): 0xb6, ("hpre", 1): 0xb9}
DRIVERS = {"zip": "hisi_zip", "sec": "hisi_sec2", "hpre": "hisi_hpre"}
MODULES = ("hisi_qm", "hisi_zip", "hisi_sec2", "hisi_hpre", "hisi_acc_vfio_pci")
BUILD, OTHER_BUILD = "5A1E2B7F9C0D3E4F5A6B7C8", "0F0F0F0F0F0F0F0F0F0F0F0"
GIB = 1024


def _import_collection():
    """(_placement, _queues, _drivers) from this checkout, through the .collections link that scripts/bootstrap.sh makes."""
    collections = os.path.join(ROOT, ".collections")
    if not os.path.isdir(os.path.join(collections, "ansible_collections", "openeuler", "kae")):
        sys.exit("bench/placement.py: %s/ansible_collections/openeuler/kae is missing; run make bootstrap" % collections)
    sys.path.insert(0, collections)
    from ansible_collections.openeuler.kae.plugins.module_utils import _drivers, _placement, _queues
    return _placement, _queues, _drivers


def layouts(rng):
    """Three hardware set-ups: {(engine, node): VF count}."""
    return [dict((place, rng.randint(8, 16)) for place in BUSES) for _index in range(3)]


def host_facts(rng, layout, queues, drivers, build):
    """A device_info result for one host of LAYOUT and BUILD of hisi_zip, about a quarter of its VFs held by other domains."""
    devices = []
    owners_known = rng.random() >= 0.01
    for (engine, node), bus in sorted(BUSES.items()):
        pf = "0000:%02x:00.0" % bus
        vfs = ["0000:%02x:%02x.%d" % (bus, (index + 1) // 8, (index + 1) % 8) for index in range(layout[(engine, node)])]
        devices.append({"bdf": pf, "engine": engine, "function": "pf", "numa_node": node, "driver": DRIVERS[engine],
                        "revision": "0x30", "migratable_hw": True, "sriov_totalvfs": 63, "sriov_numvfs": len(vfs), "vfs": vfs})
        for index, bdf in enumerate(vfs):
            devices.append({"bdf": bdf, "engine": engine, "function": "vf", "numa_node": node, "driver": "hisi_acc_vfio_pci",
                            "revision": "0x30", "migratable_hw": True, "pf": pf, "vf_index": index,
                            "queue_class": queues.queue_class(64, len(vfs), index),
                            "domain": "resident-%d" % rng.randint(1, 40) if rng.random() < 0.25 else None,
                            "owner_known": owners_known})
            devices[-1]["domains"] = [devices[-1]["domain"]] if devices[-1]["domain"] else []
    modules = dict((name, {"loaded": name in MODULES, "builtin": False, "version": None, "taint": "",
                           "srcversion": (build if name == "hisi_zip" else BUILD) if name in MODULES else None})
                   for name in drivers.REPORTED_MODULES)
    return {"devices": devices, "pf_q_num": {"zip": 64, "sec": 64, "hpre": 64},
            "libvirt": {"available": owners_known, "uri": "qemu:///system"}, "host": "kae-host",
            "kernel_release": "6.6.0-28.0.0.34.oe2403.aarch64", "drivers": modules, "migration_drivers": ["hisi_acc_vfio_pci"]}


def _hold(rng, facts, name):
    """The addresses of 1-3 free VFs of one node of FACTS, now held by guest NAME; [] when none are left."""
    node = rng.choice((0, 1))
    wanted = rng.sample(ENGINES, rng.randint(1, 3))
    held = []
    for engine in wanted:
        for device in facts["devices"]:
            if device["function"] == "vf" and device["engine"] == engine and device["numa_node"] == node and device["domain"] is None:
                device["domain"] = name
                device["domains"] = [name]
                held.append(device["bdf"])
                break
    return held


def generate(hosts, guests, seed, queues, drivers):
    """(facts, capacity, guests, exclude, maintenance) of the given size."""
    rng = random.Random(seed)
    kinds = layouts(rng)
    names = ["hv%04d" % index for index in range(hosts)]
    # One host in fifty (none of those in maintenance) already runs another build of hisi_zip.
    facts = dict((name, host_facts(rng, rng.choice(kinds), queues, drivers, OTHER_BUILD if index % 50 == 7 else BUILD))
                 for index, name in enumerate(names))
    capacity = dict((name, {"memory_mib": rng.randint(16, 512) * GIB, "vcpus": rng.randint(16, 160)}) for name in names)
    maintenance = names[::10]
    exclude = names[5::100]
    records = []
    for index in range(guests):
        name = "vm%05d" % index
        source = maintenance[index % len(maintenance)]
        record = {"name": name, "host": source, "memory_mib": rng.randint(1, 32) * GIB, "vcpus": rng.randint(1, 8)}
        held = _hold(rng, facts[source], name) if rng.random() < 0.4 else []
        if held:
            record["vfs"] = held
        else:
            record["request"] = dict((engine, 1) for engine in rng.sample(ENGINES, rng.randint(1, 3)))
        if rng.random() < 0.1:
            record["pinned_node"] = rng.choice((0, 1))
        if index % 500 == 499:
            record["memory_mib"] = 1024 * GIB
        records.append(record)
    return facts, capacity, records, exclude, maintenance


def measure(placement, data, runs):
    """Median CPU seconds of the input checks and of the whole plan, median wall seconds of the plan, the last plan."""
    checks, totals, walls, plan = [], [], [], None
    for _run in range(runs):
        started = time.process_time()
        placement.read_input(*data)
        checks.append(time.process_time() - started)
        started, wall = time.process_time(), time.perf_counter()
        plan = placement.plan(*data)
        totals.append(time.process_time() - started)
        walls.append(time.perf_counter() - wall)
    return statistics.median(checks), statistics.median(totals), statistics.median(walls), plan


def count_calls(placement, data):
    """{phase: Python function calls} of one plan; phases: checks, search, reasons."""
    counts = collections.Counter()
    phase = ["checks"]
    originals = {}

    def enter(name, method):
        def wrapper(*args, **kwargs):
            outer, phase[0] = phase[0], name
            try:
                return method(*args, **kwargs)
            finally:
                phase[0] = outer
        return wrapper

    def count(_frame, event, _arg):
        if event in ("call", "c_call"):
            counts[phase[0]] += 1

    for method, name in (("choose", "search"), ("place", "search"), ("reasons", "reasons")):
        originals[method] = getattr(placement.Planner, method)
        setattr(placement.Planner, method, enter(name, originals[method]))
    sys.setprofile(count)
    try:
        placement.plan(*data)
    finally:
        sys.setprofile(None)
        for method, original in originals.items():
            setattr(placement.Planner, method, original)
    return counts


def vfs_given_twice(plan):
    seen, twice = set(), []
    for move in plan["placements"]:
        for bdf in move["vfs"]:
            if (move["destination"], bdf) in seen:
                twice.append((move["destination"], bdf))
            seen.add((move["destination"], bdf))
    return twice


def main():
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated fleet (default 1)")
    parser.add_argument("--full-runs", type=int, default=3, help="runs at 100 %% (smaller sizes run more); the median is printed (default 3)")
    args = parser.parse_args()
    placement, queues, drivers = _import_collection()
    rows = []
    for percent, runs in ((1, 15 * args.full_runs), (10, 3 * args.full_runs), (100, args.full_runs)):
        hosts, guests = FULL_HOSTS * percent // 100, FULL_GUESTS * percent // 100
        data = generate(hosts, guests, args.seed, queues, drivers)
        check_s, total_s, wall_s, plan = measure(placement, data, runs)
        calls = count_calls(placement, data)
        rows.append({"percent": percent, "hosts": hosts, "guests": guests, "runs": runs, "check_s": check_s, "total_s": total_s, "wall_s": wall_s,
                     "placed": len(plan["placements"]), "unplaced": len(plan["unplaced"]), "classes": len(plan["classes"]),
                     "work": guests * math.log2(hosts), "twice": vfs_given_twice(plan), "calls": calls})
    print_table(rows)
    broken = [row for row in rows if row["twice"]]
    for row in broken:
        print("ERROR: at %d %% the plan gives VFs twice: %s" % (row["percent"], row["twice"][:5]), file=sys.stderr)
    return 1 if broken else 0


def _ratio(now, before):
    return "%.1f" % (now / before) if before else "-"


def print_table(rows):
    print("Planning an evacuation (place_guests logic), median of the runs; seconds of CPU (checks, plan) and of wall clock:")
    columns = ("size", "hosts", "guests", "placed", "unplaced", "classes", "runs", "checks", "plan", "wall", "CPU ratio", "G*log2(H) ratio")
    print("%5s %6s %7s %7s %9s %8s %5s %8s %8s %8s %10s %16s" % columns)
    previous = {}
    for row in rows:
        print("%4d%% %6d %7d %7d %9d %8d %5d %8.3f %8.3f %8.3f %10s %16s" % (
            row["percent"], row["hosts"], row["guests"], row["placed"], row["unplaced"], row["classes"], row["runs"],
            row["check_s"], row["total_s"], row["wall_s"], _ratio(row["total_s"], previous.get("total_s")),
            _ratio(row["work"], previous.get("work"))))
        previous = row
    print()
    print("Python function calls of one plan (millions), as a measure of work independent of the machine's load:")
    print("%5s %8s %8s %8s %8s %10s %12s %16s" % ("size", "checks", "search", "reasons", "total", "ratio", "search ratio", "G*log2(H) ratio"))
    previous = {}
    for row in rows:
        calls, before = row["calls"], previous.get("calls", {})
        total = sum(calls.values())
        print("%4d%% %8.3f %8.3f %8.3f %8.3f %10s %12s %16s" % (
            row["percent"], calls["checks"] / 1e6, calls["search"] / 1e6, calls["reasons"] / 1e6, total / 1e6,
            _ratio(total, sum(before.values())), _ratio(calls["search"], before.get("search")), _ratio(row["work"], previous.get("work"))))
        previous = row
    full = rows[-1]
    print("At 100 %%: %.2f s of CPU (%.2f s wall) for %d guests over %d hosts, %.0f us of CPU a guest; goal: under 5 s." % (
        full["total_s"], full["wall_s"], full["guests"], full["hosts"], full["total_s"] / full["guests"] * 1e6))


if __name__ == "__main__":
    sys.exit(main())
