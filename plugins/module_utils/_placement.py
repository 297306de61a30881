# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Evacuation placement: a destination and destination VFs for every KAE guest that has to leave its host.

Input (checked at the edge, every problem raised as PlacementError naming the field):
  facts        {host: openeuler.kae.device_info result}  (devices, pf_q_num, libvirt)
  capacity     {host: {memory_mib: free MiB, vcpus: free vCPUs}}
  guests       [{name, host, memory_mib, vcpus, pinned_node (optional), vfs: [BDF] | request: {engine: count}}]
  exclude, maintenance   host names that never receive a guest

Hosts are grouped into classes by a signature of everything the parity checks compare (devices and driver
builds), so compatibility is decided once per source host and class, not per pair of hosts. Guests are placed biggest first; each goes to the
compatible host with the most free memory left (then most free vCPUs, then name) that has the guest's VFs free
on one NUMA node. Every placement consumes the VFs, memory and vCPUs it takes. A guest no host can take gets,
per group of hosts, the reason they cannot.

Search: per (class, VF request shape) a heap of hosts, most free memory on top. Free VFs, memory and vCPUs only
shrink, so a host's place in a heap only gets later: an entry made stale by a placement is moved down when it
reaches the top, and a host that can no longer serve the shape (its VFs) or any guest still to come (less memory
or vCPUs than the smallest of them) leaves the heap for good. The search for a guest stops at the first top with
too little memory. A guest thus costs O(log hosts) plus one step per host passed over for lack of vCPUs; a guest
that fits nowhere costs one pass over the hosts of the compatible classes, whose reasons it names.
"""

from __future__ import annotations

import heapq
import operator
import re

from ansible_collections.openeuler.kae.plugins.module_utils import _devices, _drivers, _queues, _validate

ENGINES = _devices.ENGINE_NAMES
GUEST_KEYS = ("name", "host", "memory_mib", "vcpus", "pinned_node", "vfs", "request")
CAPACITY_KEYS = ("memory_mib", "vcpus")
# The parts of a module's identity in device_info's drivers that the driver parity compares.
IDENTITY_KEYS = ("loaded", "builtin", "version", "srcversion")

FACTS_HINT = "pass {host: that host's registered openeuler.kae.device_info result} for every candidate and source host"
CAPACITY_HINT = "pass {host: {memory_mib: free MiB, vcpus: free vCPUs}}, numbers as numbers (| int)"
GUESTS_HINT = ("pass a list of {name, host, memory_mib, vcpus, pinned_node, and vfs: [the guest's VF addresses] "
               "or request: {engine: count}}, numbers as numbers (| int)")
NAMES_HINT = "pass a list of inventory host names that appear in the facts"
_by_bdf = operator.itemgetter("bdf")
# A PCI address exactly as the kernel (and so device_info) writes it.
_CANONICAL_BDF = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]")


class PlacementError(ValueError):
    """Bad input; the message names the field, the expected form and how to fix it."""


# ---------------------------------------------------------------- input

def _fail(message, hint):
    raise PlacementError("%s; %s" % (message, hint))


def _checked(hint, check, *args, **kwargs):
    """CHECK(*ARGS, **KWARGS) with an InputError turned into a PlacementError ending in HINT."""
    try:
        return check(*args, **kwargs)
    except _validate.InputError as exc:
        return _fail(str(exc), hint)


def _optional_text(value, option, hint):
    if value is not None and not isinstance(value, str):
        _fail("%s must be a string or null, got %s %r" % (option, type(value).__name__, value), hint)
    return value


def _boolean(value, option, hint):
    if not isinstance(value, bool):
        _fail("%s must be true or false, got %s %r" % (option, type(value).__name__, value), hint)
    return value


def _queue_class_part_ok(key, part):
    """A part of a queue_class: last is true/false, the others whole numbers; each may be null (not read)."""
    if part is None:
        return True
    if key == "last":
        return isinstance(part, bool)
    return isinstance(part, int) and not isinstance(part, bool)


def _queue_class_field(value, option):
    """A VF's queue_class as device_info reports it: {pf_q_num, num_vfs, last}, each part null when not read."""
    if value is None:
        return None
    _checked(FACTS_HINT, _validate.mapping, value, option)
    for key in _queues.CLASS_KEYS:
        if not _queue_class_part_ok(key, value.get(key)):
            _fail("%s.%s must be %s or null, got %r" % (option, key, "true/false" if key == "last" else "a whole number", value.get(key)),
                  FACTS_HINT)
    return value


def _read_device(device, option):
    """Check one device_info device dict: the device layer's own check, then what placement adds (the form of the
    address it compares, the queue class)."""
    _checked(FACTS_HINT, _devices.check_device, device, option)
    if not _CANONICAL_BDF.fullmatch(device["bdf"]):
        _fail("%s.bdf must be written as device_info reports it (lower case, no spaces), got %r" % (option, device["bdf"]), FACTS_HINT)
    if device["function"] == "vf":
        _queue_class_field(device.get("queue_class"), option + ".queue_class")


def _read_facts(name, facts):
    option = "facts[%r]" % name
    _checked(FACTS_HINT, _validate.mapping, facts, option)
    for key in ("devices", "pf_q_num", "libvirt"):
        if key not in facts:
            _fail("%s has no %s (it is not a whole device_info result)" % (option, key), FACTS_HINT)
    devices = _checked(FACTS_HINT, _validate.sequence, facts["devices"], option + ".devices")
    seen = set()
    for index, device in enumerate(devices):
        _read_device(device, "%s.devices[%d]" % (option, index))
        if device["bdf"] in seen:
            _fail("%s.devices[%d]: PCI address %s appears twice" % (option, index, device["bdf"]), FACTS_HINT)
        seen.add(device["bdf"])
    pf_q_num = _checked(FACTS_HINT, _validate.mapping, facts["pf_q_num"], option + ".pf_q_num")
    for engine, value in pf_q_num.items():
        if engine not in ENGINES:
            _fail("%s.pf_q_num names engine %r; known engines are %s" % (option, engine, ", ".join(ENGINES)), FACTS_HINT)
        _checked(FACTS_HINT, _validate.number, value, "%s.pf_q_num.%s" % (option, engine), minimum=0,
                 maximum=_devices.PF_Q_NUM_MAX, integer=True)
    note = _checked(FACTS_HINT, _validate.mapping, facts["libvirt"], option + ".libvirt")
    _boolean(note.get("available"), option + ".libvirt.available", FACTS_HINT)
    _read_driver_facts(facts, option)


def _read_driver_facts(facts, option):
    """Check what the driver parity reads: drivers (per module its identity), kernel_release, migration_drivers, host."""
    for key in ("kernel_release", "host"):
        _optional_text(facts.get(key), "%s.%s" % (option, key), FACTS_HINT)
    for index, driver in enumerate(_checked(FACTS_HINT, _validate.sequence, facts.get("migration_drivers", []), option + ".migration_drivers")):
        _checked(FACTS_HINT, _validate.text, driver, "%s.migration_drivers[%d]" % (option, index))
    if facts.get("drivers") is None:
        return
    for name, module in _checked(FACTS_HINT, _validate.mapping, facts["drivers"], option + ".drivers").items():
        where = "%s.drivers[%r]" % (option, name)
        _checked(FACTS_HINT, _validate.mapping, module, where)
        for key in ("loaded", "builtin"):
            if key in module:
                _boolean(module[key], "%s.%s" % (where, key), FACTS_HINT)
        for key in ("version", "srcversion"):
            _optional_text(module.get(key), "%s.%s" % (where, key), FACTS_HINT)


def _read_capacity(capacity, hosts):
    """{host: (free memory MiB, free vCPUs)} for the hosts that have an entry."""
    _checked(CAPACITY_HINT, _validate.mapping, capacity, "capacity")
    result = {}
    for name, entry in capacity.items():
        option = "capacity[%r]" % (name,)
        if name not in hosts:
            _fail("%s names a host that is not in the facts" % option, CAPACITY_HINT)
        _checked(CAPACITY_HINT, _validate.mapping, entry, option)
        unknown = sorted(str(key) for key in entry if key not in CAPACITY_KEYS)
        if unknown:
            _fail("%s has unknown keys %s; known keys are %s" % (option, ", ".join(unknown), ", ".join(CAPACITY_KEYS)), CAPACITY_HINT)
        for key in CAPACITY_KEYS:
            if key not in entry:
                _fail("%s has no %s" % (option, key), CAPACITY_HINT)
        memory = _checked(CAPACITY_HINT, _validate.number, entry["memory_mib"], option + ".memory_mib", minimum=0)
        vcpus = _checked(CAPACITY_HINT, _validate.number, entry["vcpus"], option + ".vcpus", minimum=0, integer=True)
        result[name] = (memory, vcpus)
    return result


def _read_names(names, option, hosts):
    """A list of host names from the facts, as a set."""
    if names is None:
        return set()
    result = set()
    for index, name in enumerate(_checked(NAMES_HINT, _validate.sequence, names, option)):
        where = "%s[%d]" % (option, index)
        _checked(NAMES_HINT, _validate.text, name, where)
        if name not in hosts:
            _fail("%s names host %r, which is not in the facts" % (where, name), NAMES_HINT)
        result.add(name)
    return result


# ---------------------------------------------------------------- compatibility between hosts

def signature(host):
    """Everything the parity checks read (but the host's name), hashable: hosts with one signature compare alike with any host.

    _devices.parity: the engines present, pf_q_num, per PF its address, engine, node, revision and sriov_numvfs.
    _drivers.parity: per module its identity, the kernel release, the migration drivers.
    """
    facts = host.facts
    devices = facts["devices"]
    pfs = sorted((d["bdf"], d["engine"], d["numa_node"], d.get("revision"), d.get("sriov_numvfs"))
                 for d in devices if d["function"] == "pf")
    drivers = facts.get("drivers")
    identities = None if drivers is None else tuple(sorted((name,) + tuple(module.get(key) for key in IDENTITY_KEYS)
                                                           for name, module in drivers.items()))
    return (tuple(sorted(set(d["engine"] for d in devices))), tuple(sorted(host.pf_q_num.items())), tuple(pfs),
            identities, facts.get("kernel_release"), tuple(facts.get("migration_drivers", [])))


def differences(source, destination):
    """Why DESTINATION cannot take guests from SOURCE (hosts); empty when their KAE set-ups are compatible.

    The device parity and the driver build parity of `openeuler.kae.device_parity`, and what they cannot compare:
    without pf_q_num on both sides the VFs' queue counts, without driver facts the builds (the destination driver
    refuses a VF of another queue count, an older build the newer migration stream).
    """
    problems = _devices.parity(source.facts, destination.facts) + _drivers.parity(source.facts, destination.facts)[0]
    engines = set(d["engine"] for d in source.facts["devices"]) & set(d["engine"] for d in destination.facts["devices"])
    for side, host in (("source", source), ("destination", destination)):
        for engine in (e for e in ENGINES if e in engines and e not in host.pf_q_num):
            problems.append("pf_q_num of %s is not known on the %s %s (%s does not show it), so its VFs' queue counts "
                            "cannot be compared" % (engine, side, host.name, _devices.ENGINES[engine]["driver"]))
        if host.facts.get("drivers") is None:
            problems.append("the KAE driver builds of the %s %s are not known (its facts have no drivers), so they cannot be "
                            "compared; read them with openeuler.kae.device_info" % (side, host.name))
    return problems


# ---------------------------------------------------------------- VFs

def vf_key(vf):
    """(engine, queue class parts or None when not fully known): a destination VF serves a source VF with an equal key."""
    key = _queues.class_key(vf)
    return (vf["engine"], None if key is None else key[1:])


def offered_key(vf, host):
    """The key under which a destination VF is offered, or None when it is not free.

    Free: unassigned, on a migration driver, on migratable hardware (_devices.is_free), and its owner read:
    a VF whose owner could not be read (libvirt unavailable, or owner_known false) is never free.
    """
    if not host.owners_known or not _devices.is_free(vf):
        return None
    return vf_key(vf)


def describe_key(key):
    """'zip', or 'zip (queue class pf_q_num 64, 4 VFs, not the last VF)'."""
    engine, cls = key
    if cls is None:
        return engine
    return "%s (queue class %s)" % (engine, _queues.describe(dict(zip(_queues.CLASS_KEYS, cls))))


def _key_order(key):
    engine, cls = key
    return (ENGINES.index(engine), cls is not None, cls or ())


# ---------------------------------------------------------------- hosts and guests

class Host:
    """A candidate host: its facts, its class, and the free VFs, memory and vCPUs left as guests are placed."""

    __slots__ = ("name", "facts", "pf_q_num", "owners_known", "cls", "memory", "vcpus", "free", "counts",
                 "nodes", "blocked", "version", "incoming", "by_bdf", "problems")

    def __init__(self, name, facts):
        self.name = name
        self.facts = facts
        self.pf_q_num = dict(facts["pf_q_num"])
        self.owners_known = facts["libvirt"]["available"] is True
        self.cls = None
        self.memory = self.vcpus = None
        self.blocked = None
        self.version = 0
        self.by_bdf = dict((d["bdf"], d) for d in facts["devices"])
        # shape -> the host's VF problems for guests of that shape, until it takes a guest (reasons ask often).
        self.problems = {}
        self.incoming = []
        self._pool_free_vfs()

    def _pool_free_vfs(self):
        """free[node][engine] = [(bdf, queue class)] by address; counts[node][key] per exact key and per (engine, None)."""
        self.free, self.counts = {}, {}
        for vf in sorted((d for d in self.facts["devices"] if d["function"] == "vf"), key=_by_bdf):
            node = vf["numa_node"]
            if node not in self.free:
                self.free[node] = dict((engine, []) for engine in ENGINES)
                self.counts[node] = {}
            key = offered_key(vf, self)
            if key is not None:
                self.free[node][key[0]].append((vf["bdf"], key[1]))
                self._count(node, key, 1)
        self.nodes = sorted(self.free)

    def _count(self, node, key, delta):
        counts = self.counts[node]
        if key[1] is not None:
            counts[key] = counts.get(key, 0) + delta
        total = (key[0], None)
        counts[total] = counts.get(total, 0) + delta

    def fits_node(self, node, demand):
        counts = self.counts.get(node)
        if counts is None:
            return False
        have = counts.get
        for key, need in demand:
            if have(key, 0) < need:
                return False
        return True

    def vf_node(self, guest):
        """The node to take the guest's VFs from (its pinned node, else its VFs' node first, then ascending), or None."""
        if guest.pinned is not None:
            return guest.pinned if self.fits_node(guest.pinned, guest.demand) else None
        if guest.prefer is not None and self.fits_node(guest.prefer, guest.demand):
            return guest.prefer
        for node in self.nodes:
            if self.fits_node(node, guest.demand):
                return node
        return None

    def take(self, node, guest):
        """Consume the guest's VFs on NODE, its memory and vCPUs. Returns the destination VFs, one per guest.vfs entry."""
        pool = self.free[node]
        chosen = [None] * len(guest.vfs)
        # VFs of a known class first, from their class, in address order; then the others from what their engine has left.
        order = sorted(range(len(guest.vfs)), key=lambda i: (guest.vfs[i][1][1] is None, guest.vfs[i][0] or "", i))
        for index in order:
            engine, cls = guest.vfs[index][1]
            for position, (bdf, offered) in enumerate(pool[engine]):
                if cls is None or offered == cls:
                    del pool[engine][position]
                    self._count(node, (engine, offered), -1)
                    chosen[index] = bdf
                    break
        self.memory -= guest.memory
        self.vcpus -= guest.vcpus
        self.version += 1
        self.problems = {}
        self.incoming.append(guest.name)
        return chosen

    def entry(self):
        """Heap entry: most free memory first, then most free vCPUs, then name; the version marks stale entries."""
        return (-self.memory, -self.vcpus, self.name, self.version)


class Guest:
    """A guest to move: what it needs and which VFs it holds now."""

    __slots__ = ("name", "host", "memory", "vcpus", "pinned", "vfs", "demand", "shape", "prefer", "checked")

    def __init__(self, name, host, memory, vcpus, pinned, vfs, prefer):
        self.name, self.host, self.memory, self.vcpus, self.pinned, self.prefer = name, host, memory, vcpus, pinned, prefer
        self.vfs = vfs  # [(source BDF, or None for a VF asked for by request, key)]
        self.checked = all(key[1] is not None for _source, key in vfs)
        self.demand = _demand([key for _source, key in vfs])
        self.shape = (self.demand, pinned)

    def order(self):
        """Biggest first (VFs, memory, vCPUs), then name: the plan does not depend on the order of the list."""
        return (-len(self.vfs), -self.memory, -self.vcpus, self.name)


def _demand(keys):
    """((key, count), ...): each known class, plus (engine, None) with the engine's total where a VF's class is unknown."""
    counts, totals, open_engines = {}, {}, set()
    for engine, cls in keys:
        totals[engine] = totals.get(engine, 0) + 1
        if cls is None:
            open_engines.add(engine)
        else:
            counts[(engine, cls)] = counts.get((engine, cls), 0) + 1
    for engine in open_engines:
        counts[(engine, None)] = totals[engine]
    return tuple(sorted(counts.items(), key=lambda item: _key_order(item[0])))


def _read_guest(index, guest, hosts, claimed):
    option = "guests[%d]" % index
    _checked(GUESTS_HINT, _validate.mapping, guest, option)
    name = _checked(GUESTS_HINT, _validate.domain_name, guest.get("name"), option + ".name")
    option = "guests[%d] (%s)" % (index, name)
    unknown = sorted(str(key) for key in guest if key not in GUEST_KEYS)
    if unknown:
        _fail("%s has unknown keys %s; known keys are %s" % (option, ", ".join(unknown), ", ".join(GUEST_KEYS)), GUESTS_HINT)
    for key in ("host", "memory_mib", "vcpus"):
        if key not in guest:
            _fail("%s has no %s" % (option, key), GUESTS_HINT)
    source = _checked(GUESTS_HINT, _validate.text, guest["host"], option + ".host")
    if source not in hosts:
        _fail("%s.host is %r, which is not in the facts" % (option, source), GUESTS_HINT)
    memory = _checked(GUESTS_HINT, _validate.positive, guest["memory_mib"], option + ".memory_mib")
    vcpus = _checked(GUESTS_HINT, _validate.positive, guest["vcpus"], option + ".vcpus", integer=True)
    pinned = guest.get("pinned_node")
    if pinned is not None:
        _checked(GUESTS_HINT, _validate.number, pinned, option + ".pinned_node", minimum=0, integer=True)
    if ("vfs" in guest) == ("request" in guest):
        _fail("%s needs exactly one of vfs (the addresses of the VFs it holds on %s) and request ({engine: count})" % (option, source),
              GUESTS_HINT)
    if "vfs" in guest:
        vfs, prefer = _guest_vfs(guest["vfs"], option, name, hosts[source], claimed)
    else:
        vfs, prefer = _guest_request(guest["request"], option), None
    return Guest(name, source, memory, vcpus, pinned, vfs, prefer)


def _guest_vfs(value, option, name, source, claimed):
    """[(BDF, key)] of the VFs a guest holds on its source host, and their common node (None when they differ)."""
    devices = source.by_bdf
    vfs = []
    for index, bdf in enumerate(_checked(GUESTS_HINT, _validate.sequence, value, option + ".vfs")):
        where = "%s.vfs[%d]" % (option, index)
        bdf = _checked(GUESTS_HINT, _validate.bdf, bdf, where)
        vf = devices.get(bdf)
        if vf is None or vf["function"] != "vf":
            _fail("%s: %s is not a KAE VF of %s according to its facts" % (where, bdf, source.name), GUESTS_HINT)
        others = sorted(set(holder for holder in vf.get("domains") or [vf.get("domain")] if holder not in (None, name)))
        if others:
            _fail("%s: VF %s of %s belongs to domain %s according to its facts, not to %s" % (where, bdf, source.name, ", ".join(others), name),
                  GUESTS_HINT)
        if (source.name, bdf) in claimed:
            _fail("%s: VF %s of %s is also listed for guest %s" % (where, bdf, source.name, claimed[(source.name, bdf)]), GUESTS_HINT)
        claimed[(source.name, bdf)] = name
        vfs.append((bdf, vf_key(vf)))
    if not vfs:
        _fail("%s.vfs is empty: a guest to place holds at least one KAE VF" % option, GUESTS_HINT)
    nodes = set(devices[bdf]["numa_node"] for bdf, _key in vfs)
    return vfs, nodes.pop() if len(nodes) == 1 else None


def _guest_request(value, option):
    """[(None, (engine, None))] for a request {engine: count}: the queue classes of such VFs are not known."""
    _checked(GUESTS_HINT, _validate.mapping, value, option + ".request")
    try:
        request = _devices._check_request(value)  # pylint: disable=protected-access
    except _devices.DeviceError as exc:
        return _fail("%s.%s" % (option, exc), GUESTS_HINT)
    if not any(request.values()):
        _fail("%s.request asks for no VF at all: a guest to place holds at least one KAE VF" % option, GUESTS_HINT)
    return [(None, (engine, None)) for engine in ENGINES for _n in range(request.get(engine, 0))]


def read_input(facts, capacity, guests, exclude=None, maintenance=None):
    """Check every input and build (hosts by name, guests in placement order). Raises PlacementError."""
    _checked(FACTS_HINT, _validate.mapping, facts, "facts")
    for name in facts:
        _checked(FACTS_HINT, _validate.text, name, "a host name in the facts")
    hosts = {}
    for name in sorted(facts):
        _read_facts(name, facts[name])
        hosts[name] = Host(name, facts[name])
    room = _read_capacity(capacity, hosts)
    excluded = _read_names(exclude, "exclude", hosts)
    in_maintenance = _read_names(maintenance, "maintenance", hosts)
    for name, host in hosts.items():
        host.memory, host.vcpus = room.get(name, (None, None))
        host.blocked = _blocked(host, name in excluded, name in in_maintenance)
    claimed, seen, result = {}, {}, []
    for index, guest in enumerate(_checked(GUESTS_HINT, _validate.sequence, guests, "guests")):
        record = _read_guest(index, guest, hosts, claimed)
        if record.name in seen:
            _fail("guests[%d] and guests[%d] are both named %s; guest names are unique" % (seen[record.name], index, record.name), GUESTS_HINT)
        seen[record.name] = index
        result.append(record)
    result.sort(key=Guest.order)
    return hosts, result


def _blocked(host, excluded, maintenance):
    """Why a host never receives a guest, as a reason category, or None."""
    if maintenance:
        return ("maintenance",)
    if excluded:
        return ("excluded",)
    if host.memory is None:
        return ("capacity",)
    if not host.owners_known:
        return ("owners",)
    return None


# ---------------------------------------------------------------- classes

class Classes:
    """Hosts grouped by signature; compatibility decided once per source host and destination class, on its first host."""

    def __init__(self, hosts):
        groups = {}
        for name in sorted(hosts):
            groups.setdefault(signature(hosts[name]), []).append(hosts[name])
        self.members = sorted(groups.values(), key=lambda members: members[0].name)
        for index, members in enumerate(self.members):
            for host in members:
                host.cls = index
        self._differences = {}

    def differences(self, source, destination_cls):
        pair = (source.name, destination_cls)
        if pair not in self._differences:
            self._differences[pair] = differences(source, self.members[destination_cls][0])
        return self._differences[pair]

    def compatible(self, source):
        return [index for index in range(len(self.members)) if not self.differences(source, index)]


# ---------------------------------------------------------------- planning

class Planner:
    """Places guests one by one on the best compatible host; see the module's description for the search."""

    def __init__(self, hosts):
        self.hosts = hosts
        self.classes = Classes(hosts)
        # Per class, a heap of its open hosts as they were at the start: a copy of it is a valid start for any shape.
        self.templates = []
        for members in self.classes.members:
            template = [host.entry() for host in members if host.blocked is None]
            heapq.heapify(template)
            self.templates.append(template)
        self.heaps = {}
        self.fixed = {}
        # The least memory and vCPUs any guest still to place needs: a host below either never serves again.
        self.floor = (0, 0)

    def _heap(self, cls, guest):
        """The heap of class CLS's hosts for the guest's shape: a copy of the class's template on first use.

        Stale entries and hosts that cannot serve the shape are dealt with as they reach the top (_top).
        """
        key = (cls, guest.shape)
        heap = self.heaps.get(key)
        if heap is None:
            heap = self.heaps[key] = list(self.templates[cls])
        return key, heap

    def _top(self, heap, guest):
        """The heap's current top entry, after refreshing stale entries and dropping hosts that can no longer serve."""
        while heap:
            entry = heap[0]
            host = self.hosts[entry[2]]
            if entry[3] != host.version:
                # The host took a guest since: its place can only be later now, so moving it down keeps the order.
                heapq.heapreplace(heap, host.entry())
            elif host.memory < self.floor[0] or host.vcpus < self.floor[1] or host.vf_node(guest) is None:
                # Free VFs, memory and vCPUs only shrink: the host is out of this shape's heap for good.
                heapq.heappop(heap)
            else:
                return entry
        return None

    def choose(self, guest):
        """The host with the most free memory (then vCPUs, then name) that can take GUEST, or None."""
        active = dict(self._heap(cls, guest) for cls in self.classes.compatible(self.hosts[guest.host]))
        aside = []
        chosen = None
        while chosen is None:
            best = None
            for key in list(active):
                entry = self._top(active[key], guest)
                # The top of a heap has its most free memory: when that is too little, so is everything below it.
                if entry is None or self.hosts[entry[2]].memory < guest.memory:
                    del active[key]
                elif best is None or entry < best[0]:
                    best = (entry, key)
            if best is None:
                break
            entry, key = best
            host = self.hosts[entry[2]]
            if host.name == guest.host or host.vcpus < guest.vcpus:
                aside.append((active[key], heapq.heappop(active[key])))
            else:
                chosen = host
        for heap, entry in aside:
            heapq.heappush(heap, entry)
        return chosen

    def place(self, guest, host):
        """Give GUEST to HOST: consume what it takes and return the placement."""
        node = host.vf_node(guest)
        chosen = host.take(node, guest)
        return {
            "guest": guest.name,
            "source": guest.host,
            "destination": host.name,
            "numa_node": node,
            "vfs": sorted(chosen),
            "mapping": dict((source, bdf) for (source, _key), bdf in zip(guest.vfs, chosen) if source is not None),
            "queue_classes_checked": guest.checked,
        }

    # ------------------------------------------------------------ reasons

    def fixed_groups(self, source):
        """({category: [host names]} of the hosts that never take a guest from SOURCE, [the other hosts]), cached."""
        if source.name not in self.fixed:
            groups, open_hosts = {}, []
            for name in sorted(self.hosts):
                host = self.hosts[name]
                if host.blocked is not None:
                    groups.setdefault(host.blocked, []).append(name)
                elif self.classes.differences(source, host.cls):
                    groups.setdefault(("incompatible", host.cls), []).append(name)
                else:
                    open_hosts.append(host)
            self.fixed[source.name] = (groups, open_hosts)
        return self.fixed[source.name]

    def reasons(self, guest):
        """[{reason, hosts}] grouping every host by why it cannot take GUEST (the fixed groups' lists are shared).

        A host open to the guest's source can stand under several reasons: its VFs, its memory, its vCPUs.
        """
        fixed, open_hosts = self.fixed_groups(self.hosts[guest.host])
        groups = dict(fixed)
        for host in open_hosts:
            if host.name == guest.host:
                groups.setdefault(("source",), []).append(host.name)
                continue
            found = host.problems.get(guest.shape)
            if found is None:
                found = host.problems[guest.shape] = _vf_problems(host, guest)
            for category in found:
                groups.setdefault(category, []).append(host.name)
            if host.memory < guest.memory:
                groups.setdefault(("memory",), []).append(host.name)
            if host.vcpus < guest.vcpus:
                groups.setdefault(("vcpus",), []).append(host.name)
        return [{"reason": self.sentence(category, [self.hosts[name] for name in groups[category]], guest), "hosts": groups[category]}
                for category in sorted(groups, key=_category_order)]

    def sentence(self, category, hosts, guest):
        kind = category[0]
        if kind == "incompatible":
            first = self.classes.members[category[1]][0]
            return ("KAE set-up incompatible with the source %s (checked against %s, whose set-up these hosts share): %s"
                    % (guest.host, first.name, "; ".join(self.classes.differences(self.hosts[guest.host], category[1]))))
        if kind == "short":
            return _short_sentence(category[1], hosts, guest)
        if kind == "split":
            return _split_sentence(hosts[0], guest)
        if kind in ("memory", "vcpus"):
            have = max(getattr(host, kind) for host in hosts)
            unit = " MiB" if kind == "memory" else ""
            return ("not enough free %s: the guest needs %s%s, the most any of these hosts has free is %s%s"
                    % ("memory" if kind == "memory" else "vCPUs", _number(getattr(guest, kind)), unit, _number(have), unit))
        if kind == "pinned":
            return ("the guest is pinned to NUMA node %d, which lacks its free VFs (%s); other nodes have them: free VFs on node %d "
                    "or re-pin the guest" % (category[1], _wanted(guest), category[1]))
        return _FIXED_SENTENCES[kind]


_FIXED_SENTENCES = {
    "source": "the guest's own host",
    "maintenance": "in maintenance: never a destination",
    "excluded": "excluded: never a destination",
    "capacity": "no entry in capacity (free memory and vCPUs unknown): never a destination",
    "owners": "libvirt could not be asked which domains hold its VFs, so none of them counts as free; read its facts again once libvirt answers",
}
_CATEGORY_RANK = dict((kind, rank) for rank, kind in enumerate(
    ("source", "maintenance", "excluded", "capacity", "owners", "incompatible", "short", "split", "pinned", "memory", "vcpus")))


def _category_order(category):
    detail = category[1] if len(category) > 1 else None
    if category[0] == "short":
        detail = _key_order(detail)
    return (_CATEGORY_RANK[category[0]], detail if detail is not None else 0)


def _number(value):
    return ("%d" % value) if float(value).is_integer() else ("%g" % value)


def _wanted(guest):
    return ", ".join("%d %s" % (need, describe_key(key)) for key, need in guest.demand)


def _vf_problems(host, guest):
    """[("pinned", node)], [("short", key), ...], [("split",)] or [] (the host has the guest's VFs on one node)."""
    allowed = [guest.pinned] if guest.pinned is not None else host.nodes
    if any(host.fits_node(node, guest.demand) for node in allowed):
        return []
    if guest.pinned is not None and any(host.fits_node(node, guest.demand) for node in host.nodes):
        return [("pinned", guest.pinned)]
    short = [("short", key) for key, need in guest.demand if _most_on_one_node(host, key, allowed) < need]
    return short or [("split",)]


def _most_on_one_node(host, key, nodes):
    return max([host.counts.get(node, {}).get(key, 0) for node in nodes] or [0])


def _short_sentence(key, hosts, guest):
    need = dict(guest.demand)[key]
    allowed = (lambda host: [guest.pinned]) if guest.pinned is not None else (lambda host: host.nodes)
    most = max(_most_on_one_node(host, key, allowed(host)) for host in hosts)
    where = "NUMA node %d (where the guest is pinned)" % guest.pinned if guest.pinned is not None else "any one NUMA node"
    return "not enough free VFs of %s on %s: the guest needs %d, the most these hosts have is %d" % (describe_key(key), where, need, most)


def _split_sentence(host, guest):
    per_node = "; ".join("node %d: %s" % (node, ", ".join("%d %s" % (host.counts[node].get(key, 0), describe_key(key)) for key, _need in guest.demand))
                         for node in host.nodes)
    return ("enough free VFs in all, but not on one NUMA node: the guest needs %s together on one node (for example %s has %s)"
            % (_wanted(guest), host.name, per_node))


def _suffix_floors(guests):
    """[(least memory, least vCPUs) among GUESTS[i:]] for each i."""
    floors, memory, vcpus = [], float("inf"), float("inf")
    for guest in reversed(guests):
        memory, vcpus = min(memory, guest.memory), min(vcpus, guest.vcpus)
        floors.append((memory, vcpus))
    floors.reverse()
    return floors


def plan(facts, capacity, guests, exclude=None, maintenance=None):
    """The evacuation plan: {placements, unplaced, incoming, classes}. Raises PlacementError on bad input."""
    hosts, ordered = read_input(facts, capacity, guests, exclude, maintenance)
    planner = Planner(hosts)
    placements, unplaced = [], []
    floors = _suffix_floors(ordered)
    for index, guest in enumerate(ordered):
        planner.floor = floors[index]
        host = planner.choose(guest)
        if host is None:
            unplaced.append({"guest": guest.name, "source": guest.host, "reasons": planner.reasons(guest)})
        else:
            placements.append(planner.place(guest, host))
    return {
        "placements": placements,
        "unplaced": unplaced,
        "incoming": dict((name, list(hosts[name].incoming)) for name in sorted(hosts) if hosts[name].incoming),
        "classes": [[host.name for host in members] for members in planner.classes.members],
    }
