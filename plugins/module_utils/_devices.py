# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""KAE accelerators (ZIP, SEC, HPRE) on a host: discovery, VF provisioning, VF selection, host parity.

A device is a dict (the collection's device facts format):
  bdf, engine (zip|sec|hpre), function (pf|vf), vendor, device, numa_node (-1 unknown), iommu_group
  (int or None), driver (None when unbound), revision ("0x30"), migratable_hw (QM v3 or later);
  a PF adds sriov_totalvfs, sriov_numvfs and vfs (VF BDFs); a VF adds pf, owner_known (whether libvirt said
  which domains hold it), domains (the libvirt domains, running or defined, that have it as a PCI passthrough
  device, running ones first), domain (the first of them, or None) and, when owner_known is false,
  owner_error (why libvirt could not tell). A VF whose owner is unknown is never free.
"""

from __future__ import annotations

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml, _libvirt, _queues, _validate
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import SysfsError, ascii_int, wait_for
from ansible_collections.openeuler.kae.plugins.module_utils._validate import InputError

VENDOR = "0x19e5"
ENGINES = {
    "zip": {"pf": "0xa250", "vf": "0xa251", "driver": "hisi_zip"},
    "sec": {"pf": "0xa255", "vf": "0xa256", "driver": "hisi_sec2"},
    "hpre": {"pf": "0xa258", "vf": "0xa259", "driver": "hisi_hpre"},
}
ENGINE_NAMES = tuple(ENGINES)
MIGRATION_DRIVERS = ("hisi_acc_vfio_pci", "vfio-pci")
# vfio-pci migrates a KAE VF only with openEuler 22.03's vendor module loaded.
VFIO_MIGRATION_MODULE = "hisi_migration"
# Live migration needs the queue manager v3, PCI revision 0x30 (later revisions keep it).
MIGRATABLE_REVISION = 0x30
DEFAULT_REQUEST = {"zip": 1, "hpre": 1, "sec": 1}
PCI_DEVICES = "bus/pci/devices"
PCI_DRIVERS = "bus/pci/drivers"
# SR-IOV counts VFs in 16 bits; NUMA node numbers stay far below this bound too.
MAX_COUNT = 65535
FACTS_HINT = "pass the 'devices' of openeuler.kae.device_info"
# A file at the root of a simulated sysfs tree (lab/simsysfs.py) that says so; sysfs itself can never hold it. Only
# such a tree makes the VF holdings a lab guest records in its <metadata> count (hostdev_bdfs).
LAB_MARKER = "kae-lab-simulated"


class DeviceError(Exception):
    """Bad input or a host state the operation cannot proceed from; the message says what and how to fix it."""


class LibvirtMissing(DeviceError):
    """libvirt-python is needed for this operation and is not installed; the message says what it is needed for."""


# ---------------------------------------------------------------- discovery

def identify(vendor, device):
    """(engine, function) for a PCI vendor/device id pair, or None when it is not a KAE function."""
    if (vendor or "").lower() != VENDOR:
        return None
    for engine, ids in ENGINES.items():
        for function in ("pf", "vf"):
            if (device or "").lower() == ids[function]:
                return engine, function
    return None


def _revision(text):
    value = ascii_int(text, 16)
    return None if value is None else "0x%02x" % value


def _virtfns(sysfs, ddir):
    """BDFs of a PF's VFs, in virtfn order."""
    links = [name for name in sysfs.listdir(ddir) if name.startswith("virtfn") and ascii_int(name[6:]) is not None]
    links.sort(key=lambda name: ascii_int(name[6:]))
    names = [sysfs.link_name(ddir + "/" + name) for name in links]
    return [name for name in names if name]


def read_device(sysfs, bdf):
    """The device dict of KAE function BDF, or None when BDF is not one (or vanished while read)."""
    ddir = sysfs.resolve(PCI_DEVICES + "/" + bdf)
    if ddir is None:
        return None
    vendor, device_id = sysfs.read(ddir + "/vendor"), sysfs.read(ddir + "/device")
    kind = identify(vendor, device_id)
    if kind is None:
        return None
    engine, function = kind
    revision = _revision(sysfs.read(ddir + "/revision"))
    group = ascii_int(sysfs.link_name(ddir + "/iommu_group"))
    numa_node = sysfs.read_int(ddir + "/numa_node")
    device = {
        "bdf": bdf,
        "engine": engine,
        "function": function,
        "vendor": vendor.lower(),
        "device": device_id.lower(),
        "numa_node": -1 if numa_node is None else numa_node,
        "iommu_group": group,
        "driver": sysfs.link_name(ddir + "/driver"),
        "revision": revision,
        "migratable_hw": revision is not None and int(revision, 16) >= MIGRATABLE_REVISION,
    }
    if function == "pf":
        device["sriov_totalvfs"] = sysfs.read_int(ddir + "/sriov_totalvfs") or 0
        device["sriov_numvfs"] = sysfs.read_int(ddir + "/sriov_numvfs") or 0
        device["vfs"] = _virtfns(sysfs, ddir)
    else:
        device["pf"] = sysfs.link_name(ddir + "/physfn")
        device["domain"] = None
    # A device removed while we read it leaves a half-filled dict: skip it rather than report it.
    if not sysfs.exists(ddir + "/vendor"):
        return None
    return device


def scan(sysfs):
    """Every KAE PF and VF under the tree's bus/pci/devices, sorted by BDF."""
    if not sysfs.exists(PCI_DEVICES):
        raise DeviceError("%s does not exist: %s is not a sysfs tree; point sysfs_root at /sys or at a sysfs-shaped copy"
                          % (sysfs.path(PCI_DEVICES), sysfs.root))
    devices = []
    for bdf in sysfs.listdir(PCI_DEVICES):
        device = read_device(sysfs, bdf)
        if device is not None:
            devices.append(device)
    return _queues.annotate(sysfs, devices, read_pf_q_num(sysfs))


def read_pf_q_num(sysfs):
    """{engine: pf_q_num} for the engines whose host driver module exposes the parameter."""
    result = {}
    for engine, ids in ENGINES.items():
        value = sysfs.read_int("module/%s/parameters/pf_q_num" % ids["driver"])
        if value is not None:
            result[engine] = value
    return result


def migration_drivers(sysfs):
    """The migration drivers this host offers, in order of preference."""
    offered = [name for name in MIGRATION_DRIVERS if sysfs.exists(PCI_DRIVERS + "/" + name)]
    if "vfio-pci" in offered and not sysfs.exists("module/" + VFIO_MIGRATION_MODULE):
        offered.remove("vfio-pci")
    return offered


def engine_summary(devices):
    """{engine: {pfs, vfs, free_vfs, numa_nodes}} over the devices (every engine listed, even absent ones)."""
    summary = {}
    for engine in ENGINE_NAMES:
        pfs = [d for d in devices if d["engine"] == engine and d["function"] == "pf"]
        vfs = [d for d in devices if d["engine"] == engine and d["function"] == "vf"]
        summary[engine] = {
            "pfs": len(pfs),
            "vfs": len(vfs),
            "free_vfs": len([vf for vf in vfs if is_free(vf)]),
            "numa_nodes": sorted(set(d["numa_node"] for d in pfs)),
        }
    return summary


# ---------------------------------------------------------------- libvirt hostdevs

def is_lab_tree(sysfs):
    """Whether SYSFS is a simulated lab tree (it carries LAB_MARKER at its root). The kernel's /sys never is."""
    return sysfs.root != "/sys" and sysfs.read(LAB_MARKER) is not None


def hostdev_bdfs(domain_xml, lab=False):
    """Host PCI addresses a libvirt domain XML document passes through (PCI <hostdev>, <interface type='hostdev'>).

    With LAB (a simulated tree, see is_lab_tree) the VFs its <metadata><kae:vfs> names count as held too.
    """
    root = _domain_xml.parse_domain(domain_xml)
    found = (_domain_xml.passthrough_bdf(element) for element in _domain_xml.passthrough_devices(root))
    bdfs = [bdf for bdf in found if bdf is not None]
    if lab:
        bdfs.extend(bdf for bdf in _domain_xml.lab_vf_bdfs(root) if bdf not in bdfs)
    return bdfs


def _domain_documents(dom):
    """[(xml, how)]: a running domain's live XML and, when persistent, the definition it starts with next."""
    if not dom.isActive():
        return [(dom.XMLDesc(_libvirt.libvirt.VIR_DOMAIN_XML_INACTIVE), "defined, not running")]
    documents = [(dom.XMLDesc(0), "running")]
    if dom.isPersistent():
        documents.append((dom.XMLDesc(_libvirt.libvirt.VIR_DOMAIN_XML_INACTIVE), "in its definition"))
    return documents


def domain_holdings(conn, lab=False):
    """{bdf: [(domain name, how)]} over every domain of CONN, running domains first (LAB: see hostdev_bdfs).

    HOW is "running", "in its definition" (a running domain's next boot) or "defined, not running". libvirt's
    errors (but a domain undefined since the listing) and unreadable definitions propagate: the caller decides
    that an incomplete answer means "unknown".
    """
    found = {}
    for dom in conn.listAllDomains(0):
        try:
            name, rank, documents = dom.name(), (0 if dom.isActive() else 1), _domain_documents(dom)
        except _libvirt.libvirt.libvirtError as exc:
            if exc.get_error_code() == _libvirt.libvirt.VIR_ERR_NO_DOMAIN:
                continue  # undefined since the listing: it holds nothing any more
            raise
        for order, (xml, how) in enumerate(documents):
            for bdf in hostdev_bdfs(xml, lab):
                found.setdefault(bdf, set()).add((rank, name, order, how))
    return dict((bdf, [(name, how) for _rank, name, _order, how in sorted(entries)]) for bdf, entries in found.items())


def _holders(conn, lab=False):
    """{bdf: [domain names, running ones first]} over every domain of CONN."""
    holders = {}
    for bdf, entries in domain_holdings(conn, lab).items():
        holders[bdf] = []
        for name, _how in entries:
            if name not in holders[bdf]:
                holders[bdf].append(name)
    return holders


def hostdev_owners(uri, lab=False):
    """({bdf: [domain names]}, libvirt note) for every domain (running or defined) on URI (LAB: see hostdev_bdfs).

    Only a complete answer counts: when libvirt cannot be asked, or any domain cannot be read, the mapping is
    empty and the note says why: {available: false, uri, reason}.
    """
    try:
        conn = _libvirt.connect(uri, read_only=True)
    except _libvirt.LibvirtFailure as exc:
        return {}, {"available": False, "uri": uri, "reason": str(exc)}
    try:
        return connection_owners(conn, uri, lab)
    finally:
        conn.close()


def connection_owners(conn, uri, lab=False):
    """hostdev_owners over a connection already open to URI (the caller closes it)."""
    note = {"available": False, "uri": uri}
    try:
        owners = _holders(conn, lab)
    except _libvirt.libvirt.libvirtError as exc:
        note["reason"] = "cannot read the domains on %s: %s" % (uri, _libvirt.error_text(exc))
        return {}, note
    except _domain_xml.DomainXMLError as exc:
        note["reason"] = "cannot read a domain definition on %s: %s" % (uri, exc)
        return {}, note
    note["available"] = True
    return owners, note


def with_owners(devices, owners, note):
    """DEVICES with each VF's owner set from a hostdev_owners answer; every VF's owner is unknown when libvirt did not answer."""
    return assign_domains(devices, owners, unknown_reason=None if note["available"] else note["reason"])


def assign_domains(devices, owners, unknown_reason=None):
    """Set each VF's owner fields from {bdf: [domain names]}; with UNKNOWN_REASON every VF's owner is unknown."""
    for device in devices:
        if device["function"] != "vf":
            continue
        names = [] if unknown_reason else list(owners.get(device["bdf"], []))
        device["domains"] = names
        device["domain"] = names[0] if names else None
        device["owner_known"] = unknown_reason is None
        # Facts read earlier may carry an old error: only this answer counts.
        device.pop("owner_error", None)
        if unknown_reason is not None:
            device["owner_error"] = unknown_reason
    return devices


def is_free(vf):
    """A VF a new guest can take: known to be held by no domain, on a migration driver, on migratable hardware."""
    return (vf.get("owner_known") is True and vf.get("domain") is None and not vf.get("domains")
            and vf.get("driver") in MIGRATION_DRIVERS and bool(vf.get("migratable_hw")))


def check_owners_known(devices, purpose):
    """DeviceError unless libvirt said which domains hold every VF of DEVICES (checked device facts)."""
    unknown = [d for d in devices if d["function"] == "vf" and d.get("owner_known") is not True]
    if not unknown:
        return
    reasons = sorted(set(d.get("owner_error") or "the device facts do not say (no owner_known); %s" % FACTS_HINT for d in unknown))
    raise DeviceError("VF ownership could not be read (%s), so %d VFs may belong to a guest: refusing to %s. Make libvirt "
                      "reachable (uri) and read the devices again with openeuler.kae.device_info"
                      % ("; ".join(reasons), len(unknown), purpose))


# ---------------------------------------------------------------- device facts from outside

_FACT_TEXTS = ("driver", "domain", "revision", "owner_error")
_FACT_BOOLS = ("migratable_hw", "owner_known")
_FACT_COUNTS = ("sriov_numvfs", "sriov_totalvfs")


def _check_choice(value, choices, option):
    if not isinstance(value, str) or value not in choices:
        raise InputError("%s must be one of %s, got %s %r" % (option, ", ".join(choices), type(value).__name__, value))


def _plain_text(value):
    return isinstance(value, str) and "\x00" not in value and bool(value.strip())


def _plain_count(value, minimum=0):
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= MAX_COUNT


def _plainly_valid(device):
    """True when DEVICE passes every rule of check_device, tested cheaply (fleet placement checks 100,000s).

    Written as plain loops: this runs once per device of every host of a fleet.
    """
    get = device.get
    if not (_validate.is_bdf(get("bdf")) and get("engine") in ENGINE_NAMES and get("function") in ("pf", "vf")
            and _plain_count(get("numa_node"), -1)):
        return False
    for key in _FACT_TEXTS:
        value = get(key)
        if value is not None and not _plain_text(value):
            return False
    for key in _FACT_BOOLS:
        if key in device and not isinstance(device[key], bool):
            return False
    for key in _FACT_COUNTS:
        if key in device and not _plain_count(device[key]):
            return False
    pf, domains, vfs = get("pf"), get("domains", []), get("vfs", [])
    if (pf is not None and not _validate.is_bdf(pf)) or not isinstance(domains, list) or not isinstance(vfs, list):
        return False
    for name in domains:
        if not _plain_text(name):
            return False
    for bdf in vfs:
        if not _validate.is_bdf(bdf):
            return False
    return True


def check_device(device, where):
    """InputError naming WHERE and the field when DEVICE is not a device dict of openeuler.kae.device_info."""
    if isinstance(device, dict) and _plainly_valid(device):
        return
    _validate.mapping(device, where)
    missing = [key for key in ("bdf", "engine", "function", "numa_node") if key not in device]
    if missing:
        raise InputError("%s lacks %s" % (where, ", ".join(repr(key) for key in missing)))
    _validate.bdf(device["bdf"], where + ".bdf")
    _check_choice(device["engine"], ENGINE_NAMES, where + ".engine")
    _check_choice(device["function"], ("pf", "vf"), where + ".function")
    _validate.number(device["numa_node"], where + ".numa_node", minimum=-1, maximum=MAX_COUNT, integer=True)
    for key in _FACT_TEXTS:
        if device.get(key) is not None:
            _validate.text(device[key], "%s.%s" % (where, key))
    for key in _FACT_BOOLS:
        if key in device and not isinstance(device[key], bool):
            raise InputError("%s.%s must be true or false, got %s" % (where, key, type(device[key]).__name__))
    for key in _FACT_COUNTS:
        if key in device:
            _validate.number(device[key], "%s.%s" % (where, key), minimum=0, maximum=MAX_COUNT, integer=True)
    if device.get("pf") is not None:
        _validate.bdf(device["pf"], where + ".pf")
    for index, name in enumerate(_validate.sequence(device.get("domains", []), where + ".domains")):
        _validate.text(name, "%s.domains[%d]" % (where, index))
    for index, bdf in enumerate(_validate.sequence(device.get("vfs", []), where + ".vfs")):
        _validate.bdf(bdf, "%s.vfs[%d]" % (where, index))


def check_devices(devices, option="devices"):
    """DEVICES when it is a device list of openeuler.kae.device_info; DeviceError naming the item and field otherwise."""
    if not isinstance(devices, list):
        raise DeviceError("expected the device list of openeuler.kae.device_info (its 'devices'), got %s" % type(devices).__name__)
    for index, device in enumerate(devices):
        try:
            check_device(device, "%s[%d]" % (option, index))
        except InputError as exc:
            raise DeviceError("%s; %s" % (exc, FACTS_HINT)) from None
    return devices


# ---------------------------------------------------------------- VF selection

def _check_request(request):
    if request is None:
        return dict(DEFAULT_REQUEST)
    if not isinstance(request, dict) or not request:
        raise DeviceError("request must be a non-empty mapping of engine to VF count such as %s, got %s"
                          % (DEFAULT_REQUEST, type(request).__name__))
    for engine, count in request.items():
        if not isinstance(engine, str) or engine not in ENGINES:
            raise DeviceError("request names engine %r; known engines are %s" % (engine, ", ".join(ENGINE_NAMES)))
        try:
            _validate.number(count, "request[%r]" % engine, minimum=0, maximum=MAX_COUNT, integer=True)
        except InputError as exc:
            raise DeviceError("%s (a count of VFs)" % exc) from None
    return request


def select_vfs(devices, request=None, prefer_node=None):
    """Free VFs fulfilling REQUEST ({engine: count}) all on one NUMA node, PREFER_NODE first.

    Nodes are tried in the order PREFER_NODE, then ascending; in a node the lowest BDFs are chosen.
    Raises DeviceError naming, for every node, the engines it lacks.
    """
    request = _check_request(request)
    check_owners_known(check_devices(devices), "choose VFs")
    free = [d for d in devices if d["function"] == "vf" and is_free(d)]
    nodes = sorted(set(d["numa_node"] for d in devices if d["function"] == "vf") | set(d["numa_node"] for d in free))
    if prefer_node in nodes:
        nodes.remove(prefer_node)
        nodes.insert(0, prefer_node)
    shortages = []
    for node in nodes:
        chosen, lacking = [], []
        for engine, count in request.items():
            pool = sorted((vf for vf in free if vf["engine"] == engine and vf["numa_node"] == node), key=lambda vf: vf["bdf"])
            if len(pool) < count:
                lacking.append("%s (%d free of %d wanted)" % (engine, len(pool), count))
            chosen.extend(pool[:count])
        if not lacking:
            return chosen
        shortages.append("node %d lacks %s" % (node, ", ".join(lacking)))
    if not shortages:
        raise DeviceError("the host has no KAE VFs at all; create them with openeuler.kae.sriov (or the openeuler.kae.host role)")
    wanted = ", ".join("%d %s" % (count, engine) for engine, count in request.items())
    raise DeviceError("no NUMA node has %s free VFs (unassigned, on %s, migratable hardware): %s"
                      % (wanted, " or ".join(MIGRATION_DRIVERS), "; ".join(shortages)))


# ---------------------------------------------------------------- parity between hosts

# pf_q_num is an unsigned int module parameter; anything above this cannot come from a real host.
PF_Q_NUM_MAX = 2 ** 31


def _check_pf_q_num(pf_q_num, option):
    """{engine: pf_q_num} from a device_info result's pf_q_num (absent: {})."""
    try:
        for engine, value in _validate.mapping(pf_q_num if pf_q_num is not None else {}, option).items():
            _check_choice(engine, ENGINE_NAMES, "a key of " + option)
            _validate.number(value, "%s[%r]" % (option, engine), minimum=0, maximum=PF_Q_NUM_MAX, integer=True)
    except InputError as exc:
        raise DeviceError(str(exc)) from None
    return dict(pf_q_num or {})


def _unpack_facts(facts, side):
    """(devices, {engine: pf_q_num}) from a device list or a device_info result."""
    try:
        if isinstance(facts, dict) and "devices" in facts:
            return check_devices(facts["devices"], "devices"), _check_pf_q_num(facts.get("pf_q_num"), "pf_q_num")
        return check_devices(facts), {}
    except DeviceError as exc:
        raise DeviceError("the %s facts: %s" % (side, exc)) from None


def parity(src_facts, dst_facts):
    """Mismatches between two hosts that would make a VF migration fail the driver's compatibility check.

    Each fact set is a device list or a device_info result (then pf_q_num is compared too). PFs are
    matched by BDF: a migrating guest keeps its hostdev addresses, so the destination needs the same
    PF at the same address. Returns a list of sentences (empty when the hosts match).
    """
    src, src_q = _unpack_facts(src_facts, "source")
    dst, dst_q = _unpack_facts(dst_facts, "destination")
    problems = []
    src_engines = set(d["engine"] for d in src)
    dst_engines = set(d["engine"] for d in dst)
    for engine in ENGINE_NAMES:
        if (engine in src_engines) != (engine in dst_engines):
            where, missing = ("source", "destination") if engine in src_engines else ("destination", "source")
            problems.append("engine %s is present on the %s but not on the %s" % (engine, where, missing))
    for engine in sorted(set(src_q) & set(dst_q)):
        if src_q[engine] != dst_q[engine]:
            problems.append("pf_q_num of %s differs: source %d, destination %d (load %s with the same pf_q_num on both)"
                            % (engine, src_q[engine], dst_q[engine], ENGINES[engine]["driver"]))
    dst_pfs = dict((d["bdf"], d) for d in dst if d["function"] == "pf")
    for pf in (d for d in src if d["function"] == "pf"):
        other = dst_pfs.get(pf["bdf"])
        if other is None:
            problems.append("PF %s (%s, node %d) exists on the source but not on the destination" % (pf["bdf"], pf["engine"], pf["numa_node"]))
            continue
        for key in ("engine", "revision", "sriov_numvfs"):
            if pf.get(key) != other.get(key):
                problems.append("PF %s: %s differs: source %s, destination %s" % (pf["bdf"], key, pf.get(key), other.get(key)))
    src_pfs = set(d["bdf"] for d in src if d["function"] == "pf")
    for bdf, pf in sorted(dst_pfs.items()):
        if bdf not in src_pfs:
            problems.append("PF %s (%s, node %d) exists on the destination but not on the source" % (bdf, pf["engine"], pf["numa_node"]))
    return problems


# ---------------------------------------------------------------- SR-IOV provisioning

def read_pf(sysfs, bdf):
    """The device dict of KAE PF BDF; DeviceError when BDF is absent or not a KAE PF."""
    device = read_device(sysfs, bdf)
    if device is None:
        ddir = sysfs.resolve(PCI_DEVICES + "/" + bdf)
        if ddir is None:
            raise DeviceError("PCI device %s does not exist under %s; list the KAE PFs with openeuler.kae.device_info"
                              % (bdf, sysfs.path(PCI_DEVICES)))
        raise DeviceError("PCI device %s (vendor %s, device %s) is not a KAE accelerator; give the BDF of a ZIP, SEC or HPRE PF"
                          % (bdf, sysfs.read(ddir + "/vendor"), sysfs.read(ddir + "/device")))
    if device["function"] != "pf":
        raise DeviceError("%s is a %s VF, not a PF; give its PF %s" % (bdf, device["engine"], device["pf"]))
    return device


def check_pf_driver(pf):
    """DeviceError unless the PF is bound to its host driver (without it the VFs lose migration support)."""
    wanted = ENGINES[pf["engine"]]["driver"]
    if pf["driver"] == wanted:
        return
    state = "is bound to %s" % pf["driver"] if pf["driver"] else "is not bound to any driver"
    raise DeviceError("PF %s (%s) %s, not %s: its VFs would silently lose live-migration support. Bind it to %s "
                      "(modprobe %s; unbind it from its current driver, then write %s to %s/bind) and run again"
                      % (pf["bdf"], pf["engine"], state, wanted, wanted, wanted, pf["bdf"], PCI_DRIVERS + "/" + wanted))


def choose_driver(sysfs, requested):
    """The VF driver to bind for REQUESTED (auto|hisi_acc_vfio_pci|vfio-pci|none); None for none."""
    if requested == "none":
        return None
    driver = requested
    if requested == "auto":
        driver = "hisi_acc_vfio_pci" if sysfs.exists(PCI_DRIVERS + "/hisi_acc_vfio_pci") else "vfio-pci"
    if not sysfs.exists(PCI_DRIVERS + "/" + driver):
        hint = "modprobe %s" % driver.replace("-", "_")
        if requested == "auto":
            raise DeviceError("no VF migration driver is loaded (neither hisi_acc_vfio_pci nor vfio-pci under %s): "
                              "load hisi_acc_vfio_pci (openEuler 24.03) or vfio-pci and hisi_migration (openEuler 22.03)"
                              % sysfs.path(PCI_DRIVERS))
        raise DeviceError("driver %s is not loaded (no %s): %s first" % (driver, sysfs.path(PCI_DRIVERS + "/" + driver), hint))
    if driver == "vfio-pci" and not sysfs.exists("module/" + VFIO_MIGRATION_MODULE):
        raise DeviceError("VFs bound to vfio-pci migrate only with the %s module loaded, and %s is absent: "
                          "modprobe %s (openEuler 22.03), or use hisi_acc_vfio_pci (openEuler 24.03)"
                          % (VFIO_MIGRATION_MODULE, sysfs.path("module/" + VFIO_MIGRATION_MODULE), VFIO_MIGRATION_MODULE))
    return driver


def predicted_vf_bdfs(sysfs, pf, count):
    """BDFs the kernel will give COUNT VFs of PF (from sriov_offset/stride; virtfnN names when unreadable)."""
    ddir = sysfs.resolve(PCI_DEVICES + "/" + pf["bdf"])
    offset = sysfs.read_int(ddir + "/sriov_offset") if ddir else None
    stride = sysfs.read_int(ddir + "/sriov_stride") if ddir else None
    if offset is None or stride is None:
        return ["%s/virtfn%d" % (pf["bdf"], index) for index in range(count)]
    domain, bus, devfn = pf["bdf"].split(":")
    dev, fn = devfn.split(".")
    routing = (int(bus, 16) << 8) | (int(dev, 16) << 3) | int(fn, 16)
    result = []
    for index in range(count):
        rid = routing + offset + index * stride
        result.append("%s:%02x:%02x.%x" % (domain, rid >> 8, (rid >> 3) & 0x1F, rid & 0x7))
    return result


def vf_state(sysfs, pf_bdf):
    """{"num_vfs": n, "vfs": {vf bdf: driver}} of a PF as the tree shows it now."""
    pf = read_pf(sysfs, pf_bdf)
    drivers = {}
    for vf in pf["vfs"]:
        drivers[vf] = sysfs.link_name(PCI_DEVICES + "/" + vf + "/driver")
    return {"num_vfs": len(pf["vfs"]), "vfs": drivers}


def _autoprobe_rel(pf_bdf):
    return PCI_DEVICES + "/" + pf_bdf + "/sriov_drivers_autoprobe"


def _autoprobe_driver(sysfs, pf, driver):
    """Driver a new VF has once created: none while the module keeps autoprobe off, else the host driver."""
    if driver:
        return None
    autoprobe = sysfs.read(_autoprobe_rel(pf["bdf"]))
    return ENGINES[pf["engine"]]["driver"] if autoprobe != "0" else None


def predict_state(sysfs, pf, before, num_vfs, driver):
    """The state {"num_vfs", "vfs"} after ensuring NUM_VFS VFs bound to DRIVER (None: leave binding)."""
    if before["num_vfs"] == num_vfs:
        vfs = dict(before["vfs"])
    else:
        default = _autoprobe_driver(sysfs, pf, driver)
        vfs = dict((bdf, default) for bdf in predicted_vf_bdfs(sysfs, pf, num_vfs))
    if driver:
        vfs = dict((bdf, driver) for bdf in vfs)
    return {"num_vfs": num_vfs, "vfs": vfs}


def check_count(pf, num_vfs):
    """DeviceError when the PF cannot have NUM_VFS VFs."""
    if num_vfs > pf["sriov_totalvfs"]:
        raise DeviceError("PF %s supports at most %d VFs (sriov_totalvfs), %d requested" % (pf["bdf"], pf["sriov_totalvfs"], num_vfs))


def _touched_vfs(before, num_vfs, driver):
    """(VFs of the PF that the change removes or rebinds, what it does to them)."""
    if before["num_vfs"] != num_vfs:
        return sorted(before["vfs"]), "change the VF count from %d to %d, which removes every VF" % (before["num_vfs"], num_vfs)
    rebound = sorted(vf for vf, current in before["vfs"].items() if driver and current != driver)
    return rebound, "rebind %s to %s" % (", ".join(rebound), driver)


def _held_text(held):
    return "; ".join("VF %s is held by libvirt domain %s" % (vf, " and ".join(names)) for vf, names in held)


def check_unheld(pf, vfs, action, uri):
    """DeviceError (LibvirtMissing) unless libvirt answers that no domain, running or defined, holds any of VFS."""
    if not vfs:
        return
    what = "%s of PF %s" % (action, pf["bdf"])
    if not _libvirt.HAS_LIBVIRT:
        raise LibvirtMissing("to %s (only libvirt can tell that no domain holds those VFs)" % what)
    owners, note = hostdev_owners(uri)
    if not note["available"]:
        raise DeviceError("cannot %s: that needs libvirt's word that no domain holds those VFs, and VF ownership could not be "
                          "read (%s); start libvirtd or set uri. Nothing was changed" % (what, note["reason"]))
    held = [(vf, owners[vf]) for vf in vfs if vf in owners]
    if held:
        raise DeviceError("cannot %s: %s; detach the VFs from those domains (or move the guests) first. Nothing was changed"
                          % (what, _held_text(held)))


def check_change(sysfs, pf, before, num_vfs, driver, uri):
    """DeviceError when going from BEFORE to NUM_VFS VFs on DRIVER could take a VF from a domain, or keep no VF off the host driver."""
    creates = num_vfs and before["num_vfs"] != num_vfs
    if creates and driver and sysfs.read(_autoprobe_rel(pf["bdf"])) is None:
        raise DeviceError("PF %s has no sriov_drivers_autoprobe, so its new VFs would bind to %s before %s; this kernel cannot "
                          "create migratable VFs safely. Nothing was changed" % (pf["bdf"], ENGINES[pf["engine"]]["driver"], driver))
    vfs, action = _touched_vfs(before, num_vfs, driver)
    check_unheld(pf, vfs, action, uri)


def _count_vfs(sysfs, pf_bdf):
    return len([n for n in sysfs.listdir(PCI_DEVICES + "/" + pf_bdf) if n.startswith("virtfn")])


def _write_count(sysfs, pf_bdf, count, timeout_s):
    """Write COUNT to sriov_numvfs and wait for the kernel's virtfn links."""
    try:
        sysfs.write(PCI_DEVICES + "/" + pf_bdf + "/sriov_numvfs", count)
    except SysfsError as exc:
        raise DeviceError("setting %d VFs on PF %s failed: %s" % (count, pf_bdf, exc)) from exc
    if not wait_for(lambda: _count_vfs(sysfs, pf_bdf) == count, timeout_s):
        raise DeviceError("PF %s still has %d VFs %s s after writing %d to sriov_numvfs; check the kernel log (dmesg)"
                          % (pf_bdf, _count_vfs(sysfs, pf_bdf), timeout_s, count))


def _restore_vfs(sysfs, pf_bdf, before, timeout_s):
    """Bring back the VFs (and their drivers) the PF had before a failed change; a sentence saying how it went."""
    try:
        if _count_vfs(sysfs, pf_bdf):
            _write_count(sysfs, pf_bdf, 0, timeout_s)
        _write_count(sysfs, pf_bdf, before["num_vfs"], timeout_s)
        for vf, driver in sorted(before["vfs"].items()):
            if driver:
                bind_vf(sysfs, vf, driver, timeout_s)
    except (DeviceError, SysfsError) as exc:
        return "restoring its previous %d VFs failed too: %s" % (before["num_vfs"], exc)
    return "its previous %d VFs were restored" % before["num_vfs"]


def _create_vfs(sysfs, pf_bdf, before, num_vfs, timeout_s):
    """Write the new count; when that fails after the old VFs went, restore them."""
    try:
        _write_count(sysfs, pf_bdf, num_vfs, timeout_s)
    except DeviceError as exc:
        if not before["num_vfs"]:
            raise
        raise DeviceError("%s; %s" % (exc, _restore_vfs(sysfs, pf_bdf, before, timeout_s))) from exc


def set_num_vfs(sysfs, pf_bdf, before, num_vfs, timeout_s, unbound=True):
    """Write sriov_numvfs (through 0 when changing a non-zero count); new VFs come up UNBOUND (autoprobe off)."""
    if before["num_vfs"]:
        _write_count(sysfs, pf_bdf, 0, timeout_s)
    if not num_vfs:
        return
    if unbound:
        _without_autoprobe(sysfs, pf_bdf, lambda: _create_vfs(sysfs, pf_bdf, before, num_vfs, timeout_s))
    else:
        _create_vfs(sysfs, pf_bdf, before, num_vfs, timeout_s)


def _without_autoprobe(sysfs, pf_bdf, action):
    """Run ACTION with the PF's sriov_drivers_autoprobe at 0 (new VFs bind to no driver), then put back the value found."""
    rel = _autoprobe_rel(pf_bdf)
    found = sysfs.read(rel)
    if found == "0":
        action()
        return
    try:
        sysfs.write(rel, 0)
    except SysfsError as exc:
        raise DeviceError("cannot keep the new VFs of PF %s off the host driver: %s" % (pf_bdf, exc)) from exc
    failure = None
    try:
        action()
    except DeviceError as exc:
        failure = exc
    try:
        sysfs.write(rel, found)
    except SysfsError as exc:
        problem = "sriov_drivers_autoprobe of PF %s could not be put back to %s: %s" % (pf_bdf, found, exc)
        raise DeviceError("%s; %s" % (failure, problem) if failure else problem) from exc
    if failure:
        raise failure


def bind_vf(sysfs, bdf, driver, timeout_s):
    """Bind VF BDF to DRIVER: unbind from the current driver, set driver_override, probe; wait for the link."""
    base = PCI_DEVICES + "/" + bdf
    current = sysfs.link_name(base + "/driver")
    if current == driver:
        return
    try:
        if current:
            sysfs.write(PCI_DRIVERS + "/" + current + "/unbind", bdf)
            if not wait_for(lambda: sysfs.link_name(base + "/driver") is None, timeout_s):
                raise DeviceError("VF %s is still bound to %s %s s after unbinding it; check dmesg" % (bdf, current, timeout_s))
        sysfs.write(base + "/driver_override", driver)
        sysfs.write("bus/pci/drivers_probe", bdf)
    except SysfsError as exc:
        raise DeviceError("binding VF %s to %s failed: %s" % (bdf, driver, exc)) from exc
    if not wait_for(lambda: sysfs.link_name(base + "/driver") == driver, timeout_s):
        raise DeviceError("VF %s did not bind to %s within %s s (driver now: %s); check dmesg"
                          % (bdf, driver, timeout_s, sysfs.link_name(base + "/driver")))


def describe_state(sysfs, pf_bdf):
    """'PF X is left with N VFs (VF: driver, ...)', read from the tree now."""
    try:
        state = vf_state(sysfs, pf_bdf)
    except (DeviceError, SysfsError) as exc:
        return "the state of PF %s cannot be read back (%s)" % (pf_bdf, exc)
    drivers = ", ".join("%s: %s" % (vf, driver or "no driver") for vf, driver in sorted(state["vfs"].items()))
    return "PF %s is left with %d VFs%s" % (pf_bdf, state["num_vfs"], " (%s)" % drivers if drivers else "")


def _apply(sysfs, pf, before, num_vfs, driver, timeout_s):
    if before["num_vfs"] != num_vfs:
        set_num_vfs(sysfs, pf["bdf"], before, num_vfs, timeout_s, unbound=bool(driver))
    if driver:
        for vf in read_pf(sysfs, pf["bdf"])["vfs"]:
            bind_vf(sysfs, vf, driver, timeout_s)


def apply_state(sysfs, pf, before, num_vfs, driver, timeout_s):
    """Make the PF's VFs match: count first (new VFs created with autoprobe off), then binding.

    Returns the state read back afterwards. A failure raises DeviceError saying which state the PF is left in.
    """
    try:
        _apply(sysfs, pf, before, num_vfs, driver, timeout_s)
    except (DeviceError, SysfsError) as exc:
        raise DeviceError("%s. %s" % (exc, describe_state(sysfs, pf["bdf"]))) from exc
    return vf_state(sysfs, pf["bdf"])
