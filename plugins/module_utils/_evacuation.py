# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Host evacuation: which guests leave, where they go, and which migrations run together.

plan()         the guests running on the drained host (those holding KAE VFs, or every one), placed by
               openeuler.kae.place_guests (KAE guests) and place_plain() (the others).
batches()      splits an evacuation plan into batches that each respect three limits: migrations at once from
               one source, into one destination, and in all. The evacuation play runs one batch at a time
               (Ansible's ``serial``), the migrations of a batch side by side (forks), so the limits hold for the
               whole run without any thread in a module.
place_plain()  gives guests that hold no KAE VF (an evacuation of every guest) a destination by memory and vCPUs,
               from the capacity the KAE plan left.

Both are pure: the same input gives the same output, whatever the order of mappings or Python's hash seed.
"""

from __future__ import annotations

from ansible_collections.openeuler.kae.plugins.module_utils import _placement, _validate

LIMIT_MAX = 1000
LIMITS_HINT = "give whole numbers from 1 to %d, for example per_source=2, per_destination=2, total=5" % LIMIT_MAX
PLAN_HINT = ("pass the device_info results of every hypervisor by host name (facts), the drained host's name, its guests as "
             "openeuler.kae.hypervisor_info returns them and the capacity entries of every hypervisor")
PLAIN_HINT = "pass guests as hypervisor_info returns them ({name, host, memory_mib, vcpus, ...}) and capacity as {host: {memory_mib, vcpus}}"


class EvacuationError(ValueError):
    """The plan, the limits or the guests cannot be used; the message names the field and the expected form."""


def _check(check, *args, hint=None, **kwargs):
    try:
        return check(*args, **kwargs)
    except _validate.InputError as exc:
        raise EvacuationError("%s; %s" % (exc, hint) if hint else str(exc)) from None


def check_limits(per_source, per_destination, total):
    """The three limits as ints; EvacuationError naming the limit otherwise."""
    for value, option in ((per_source, "per_source"), (per_destination, "per_destination"), (total, "total")):
        _check(_validate.number, value, option, minimum=1, maximum=LIMIT_MAX, integer=True, hint=LIMITS_HINT)
    return per_source, per_destination, total


def _check_placement(item, index):
    option = "placements[%d]" % index
    _check(_validate.mapping, item, option, hint="pass the placements of openeuler.kae.place_guests")
    for key in ("guest", "source", "destination"):
        _check(_validate.text, item.get(key), "%s.%s" % (option, key), hint="pass the placements of openeuler.kae.place_guests")
    return item


def batches(placements, per_source=2, per_destination=2, total=5):
    """PLACEMENTS (plan order kept) split into batches, each within the three limits; each placement gains its batch number.

    First fit: each placement goes into the first batch that still has room for its source, its destination and
    one more migration; a new batch opens when none has. The batches stay in plan order (biggest guests first),
    and within a batch the placements keep their order, so the result depends on the plan alone.
    """
    check_limits(per_source, per_destination, total)
    _check(_validate.sequence, placements, "placements", hint="pass the placements of openeuler.kae.place_guests")
    seen = set()
    out = []  # [(placements, {source: n}, {destination: n})]
    for index, item in enumerate(placements):
        _check_placement(item, index)
        if item["guest"] in seen:
            raise EvacuationError("placements[%d].guest %r is planned twice; a guest migrates once per evacuation" % (index, item["guest"]))
        seen.add(item["guest"])
        for members, sources, destinations in out:
            if (len(members) < total and sources.get(item["source"], 0) < per_source
                    and destinations.get(item["destination"], 0) < per_destination):
                break
        else:
            members, sources, destinations = [], {}, {}
            out.append((members, sources, destinations))
        members.append(item)
        sources[item["source"]] = sources.get(item["source"], 0) + 1
        destinations[item["destination"]] = destinations.get(item["destination"], 0) + 1
    return [[dict(item, batch=number) for item in members] for number, (members, _sources, _destinations) in enumerate(out, start=1)]


def _plain_guest(guest, index):
    option = "guests[%d]" % index
    _check(_validate.mapping, guest, option, hint=PLAIN_HINT)
    _check(_validate.text, guest.get("name"), option + ".name", hint=PLAIN_HINT)
    _check(_validate.text, guest.get("host"), option + ".host", hint=PLAIN_HINT)
    _check(_validate.number, guest.get("memory_mib"), option + ".memory_mib", minimum=0, hint=PLAIN_HINT)
    _check(_validate.number, guest.get("vcpus"), option + ".vcpus", minimum=0, integer=True, hint=PLAIN_HINT)
    return guest


def _free(capacity, placements, guests_by_name):
    """CAPACITY minus what the PLACEMENTS take on their destinations: {host: [memory_mib, vcpus]}."""
    _check(_validate.mapping, capacity, "capacity", hint=PLAIN_HINT)
    free = {}
    for host, entry in capacity.items():
        _check(_validate.mapping, entry, "capacity[%s]" % host, hint=PLAIN_HINT)
        free[host] = [_check(_validate.number, entry.get("memory_mib"), "capacity[%s].memory_mib" % host, minimum=0, hint=PLAIN_HINT),
                      _check(_validate.number, entry.get("vcpus"), "capacity[%s].vcpus" % host, minimum=0, integer=True, hint=PLAIN_HINT)]
    for index, item in enumerate(placements):
        _check_placement(item, index)
        taken = guests_by_name.get(item["guest"])
        if taken is not None and item["destination"] in free:
            free[item["destination"]][0] -= taken["memory_mib"]
            free[item["destination"]][1] -= taken["vcpus"]
    return free


def _plain_reasons(guest, hosts, blocked, open_hosts):
    """Why no host takes a guest without VFs, every candidate host under one reason (empty reasons left out)."""
    reasons = [
        ("the guest's own host", [host for host in hosts if host == guest["host"]]),
        ("in maintenance or excluded: never a destination", [host for host in hosts if host in blocked and host != guest["host"]]),
        ("not enough free memory or vCPUs: the guest needs %s MiB and %d vCPUs" % (guest["memory_mib"], guest["vcpus"]), open_hosts),
    ]
    return [{"reason": reason, "hosts": names} for reason, names in reasons if names]


def place_plain(guests, capacity, placements=None, blocked=None, kae_guests=None):
    """Destinations for GUESTS that hold no KAE VF: {placements: [...], unplaced: [...]}.

    CAPACITY is every candidate's free {memory_mib, vcpus}; PLACEMENTS (the KAE plan's) and KAE_GUESTS (their
    guest entries, for the memory and vCPUs they take) are taken off it first. BLOCKED hosts never receive a guest,
    nor does a guest's own host. Guests go biggest first (memory, vCPUs, name), each to the open host with the most
    free memory, then vCPUs, then the first name: the same spread rule as openeuler.kae.place_guests.
    """
    _check(_validate.sequence, guests, "guests", hint=PLAIN_HINT)
    checked = [_plain_guest(guest, index) for index, guest in enumerate(guests)]
    names = [guest["name"] for guest in checked]
    if len(set(names)) != len(names):
        raise EvacuationError("guests: a name is listed twice (%s); each guest migrates once" % ", ".join(sorted(set(n for n in names if names.count(n) > 1))))
    kae = dict((guest.get("name"), guest) for guest in (kae_guests or []) if isinstance(guest, dict))
    free = _free(capacity, placements or [], kae)
    blocked = set(blocked or [])
    placed, unplaced = [], []
    for guest in sorted(checked, key=lambda g: (-g["memory_mib"], -g["vcpus"], g["name"])):
        open_hosts = [host for host in sorted(free) if host not in blocked and host != guest["host"]]
        fitting = [host for host in open_hosts if free[host][0] >= guest["memory_mib"] and free[host][1] >= guest["vcpus"]]
        if not fitting:
            unplaced.append({"guest": guest["name"], "source": guest["host"], "reasons": _plain_reasons(guest, sorted(free), blocked, open_hosts)})
            continue
        best = min(fitting, key=lambda host: (-free[host][0], -free[host][1], host))
        free[best][0] -= guest["memory_mib"]
        free[best][1] -= guest["vcpus"]
        placed.append({"guest": guest["name"], "source": guest["host"], "destination": best, "numa_node": None,
                       "vfs": [], "mapping": {}, "queue_classes_checked": False})
    return {"placements": placed, "unplaced": unplaced}


def _held_vfs(devices, host):
    """{domain: [VF addresses]} of the VFs the device facts of HOST give to a domain."""
    _check(_validate.sequence, devices, "facts[%s].devices" % host, hint=PLAN_HINT)
    held = {}
    for device in devices:
        if not isinstance(device, dict) or device.get("function") != "vf":
            continue
        for owner in device.get("domains") or [device.get("domain")]:
            if owner:
                held.setdefault(owner, set()).add(device.get("bdf"))
    return held


def _kae_vfs(devices):
    return set(device.get("bdf") for device in devices if isinstance(device, dict) and device.get("function") == "vf")


def _entry(guest, host, vfs):
    """GUEST (a hypervisor_info guest) as a place_guests guest holding VFS."""
    entry = {"name": guest["name"], "host": host, "memory_mib": guest.get("memory_mib"), "vcpus": guest.get("vcpus"), "vfs": vfs}
    if guest.get("pinned_node") is not None:
        entry["pinned_node"] = guest["pinned_node"]
    return entry


def _foreign(guest, host, foreign):
    return {"guest": guest["name"], "source": host, "reasons": [{
        "reason": "holds PCI devices that are not KAE VFs of %s (%s): it cannot be live migrated with them" % (host, ", ".join(foreign)),
        "hosts": [host]}]}


def overcommitted(capacity, totals, cpu_ratio):
    """CAPACITY with each host's free vCPUs recomputed as its CPUs x CPU_RATIO minus the vCPUs its running domains use.

    TOTALS are hypervisor_info's totals by host ({cpus, vcpus_used}); a host without totals keeps its figure. A ratio of
    1 changes nothing (hypervisor_info counts one host CPU per vCPU).
    """
    _check(_validate.number, cpu_ratio, "cpu_ratio", minimum=1, maximum=64, hint="give the site's CPU overcommit ratio, for example 2 or 1.5")
    if cpu_ratio == 1:
        return capacity
    _check(_validate.mapping, totals, "totals", hint="pass hypervisor_info's totals by host")
    out = dict(capacity)
    for name, entry in capacity.items():
        figures = totals.get(name)
        if isinstance(figures, dict) and isinstance(entry, dict):
            cpus = _check(_validate.number, figures.get("cpus"), "totals[%s].cpus" % name, minimum=0, integer=True, hint=PLAN_HINT)
            used = _check(_validate.number, figures.get("vcpus_used"), "totals[%s].vcpus_used" % name, minimum=0, integer=True,
                          hint=PLAN_HINT)
            out[name] = dict(entry, vcpus=max(0, int(cpus * cpu_ratio) - used))
    return out


def plan(facts, host, guests, capacity, all_guests=False, exclude=None, cpu_ratio=1, totals=None):
    """The evacuation plan of HOST: {placements, unplaced, moving, staying}.

    GUESTS are HOST's running guests as openeuler.kae.hypervisor_info returns them. A guest's VFs are those its
    definition holds and those HOST's device facts give to it (in a lab, where no VF is attached, the facts carry
    the simulated holdings). Guests holding KAE VFs are placed by openeuler.kae.place_guests with HOST in
    maintenance; with ALL_GUESTS the others are placed by memory and vCPUs on what is left; without, they stay and
    are listed in ``staying``. A guest holding a PCI device that is no KAE VF of HOST is unplaced (it cannot migrate).
    ``moving`` maps each guest to move to {vfs: its VFs on HOST, kae: bool}. CPU_RATIO and TOTALS: see overcommitted().
    """
    capacity = overcommitted(capacity, totals, cpu_ratio)
    _check(_validate.mapping, facts, "facts", hint=PLAN_HINT)
    _check(_validate.text, host, "host", hint=PLAN_HINT)
    if host not in facts:
        raise EvacuationError("host %r is not in the facts (hosts: %s); %s" % (host, ", ".join(sorted(map(str, facts))), PLAN_HINT))
    source = _check(_validate.mapping, facts[host], "facts[%s]" % host, hint=PLAN_HINT)
    held, kae_vfs = _held_vfs(source.get("devices"), host), _kae_vfs(source.get("devices"))
    kae_entries, plain, unplaced, staying, moving = [], [], [], [], {}
    for index, guest in enumerate(_check(_validate.sequence, guests, "guests", hint=PLAN_HINT)):
        _check(_validate.mapping, guest, "guests[%d]" % index, hint=PLAN_HINT)
        _check(_validate.text, guest.get("name"), "guests[%d].name" % index, hint=PLAN_HINT)
        vfs = sorted(set(guest.get("vfs") or []) | held.get(guest["name"], set()))
        foreign = [bdf for bdf in vfs if bdf not in kae_vfs]
        if foreign:
            unplaced.append(_foreign(guest, host, foreign))
        elif vfs:
            kae_entries.append(_entry(guest, host, vfs))
        elif all_guests:
            plain.append(dict(guest, host=host))
        else:
            staying.append(guest["name"])
            continue
        moving[guest["name"]] = {"vfs": vfs, "kae": bool(vfs) and not foreign}
    try:
        kae = _placement.plan(facts, capacity, kae_entries, exclude, [host]) if kae_entries else {"placements": [], "unplaced": []}
    except _placement.PlacementError as exc:
        raise EvacuationError(str(exc)) from None
    others = place_plain(plain, capacity, kae["placements"], [host] + list(exclude or []), kae_entries)
    return {"placements": kae["placements"] + others["placements"],
            "unplaced": unplaced + kae["unplaced"] + others["unplaced"],
            "moving": moving, "staying": sorted(staying)}
