# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""KAE accelerators (ZIP, SEC, HPRE) on a host: discovery, VF provisioning, VF selection, host parity.

A device is a dict (the collection's device facts format):
  bdf, engine (zip|sec|hpre), function (pf|vf), vendor, device, numa_node (-1 unknown), iommu_group
  (int or None), driver (None when unbound), revision ("0x30"), migratable_hw (QM v3 or later);
  a PF adds sriov_totalvfs, sriov_numvfs and vfs (VF BDFs); a VF adds pf and domain (the libvirt domain
  that has it as a hostdev, or None).
"""

from __future__ import annotations

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml, _libvirt, _queues
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import SysfsError, wait_for

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
    try:
        return "0x%02x" % int(text, 16)
    except (TypeError, ValueError):
        return None


def _virtfns(sysfs, ddir):
    """BDFs of a PF's VFs, in virtfn order."""
    links = [name for name in sysfs.listdir(ddir) if name.startswith("virtfn") and name[6:].isdigit()]
    links.sort(key=lambda name: int(name[6:]))
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
    group = sysfs.link_name(ddir + "/iommu_group")
    numa_node = sysfs.read_int(ddir + "/numa_node")
    device = {
        "bdf": bdf,
        "engine": engine,
        "function": function,
        "vendor": vendor.lower(),
        "device": device_id.lower(),
        "numa_node": -1 if numa_node is None else numa_node,
        "iommu_group": int(group) if group and group.isdigit() else None,
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

def hostdev_bdfs(domain_xml):
    """BDFs of the PCI hostdevs in a libvirt domain XML document."""
    return [bdf for _element, bdf in _domain_xml.pci_hostdevs(_domain_xml.parse_domain(domain_xml))]


def hostdev_owners(uri):
    """({bdf: domain name}, libvirt note) for every domain (running or defined) on URI.

    When libvirt cannot be asked, the mapping is empty and the note says why: {available: false, reason}.
    """
    note = {"available": False, "uri": uri}
    try:
        conn = _libvirt.connect(uri, read_only=True)
    except _libvirt.LibvirtFailure as exc:
        note["reason"] = str(exc)
        return {}, note
    owners = {}
    try:
        for dom in conn.listAllDomains(0):
            try:
                xml = dom.XMLDesc(0)
            except _libvirt.libvirt.libvirtError:
                continue  # undefined since the listing: it holds nothing any more
            for bdf in hostdev_bdfs(xml):
                owners[bdf] = dom.name()
    except _libvirt.libvirt.libvirtError as exc:
        note["reason"] = "cannot list the domains on %s: %s" % (uri, _libvirt.error_text(exc))
        return {}, note
    finally:
        conn.close()
    note["available"] = True
    return owners, note


def assign_domains(devices, owners):
    """Set each VF's domain from {bdf: domain name}."""
    for device in devices:
        if device["function"] == "vf":
            device["domain"] = owners.get(device["bdf"])
    return devices


def is_free(vf):
    """A VF a new guest can take: unassigned, on a migration driver, on migratable hardware."""
    return vf.get("domain") is None and vf.get("driver") in MIGRATION_DRIVERS and bool(vf.get("migratable_hw"))


# ---------------------------------------------------------------- VF selection

def _check_request(request):
    if request is None:
        return dict(DEFAULT_REQUEST)
    if not isinstance(request, dict) or not request:
        raise DeviceError("request must be a non-empty mapping of engine to VF count such as %s, got %r" % (DEFAULT_REQUEST, request))
    for engine, count in request.items():
        if engine not in ENGINES:
            raise DeviceError("request names engine %r; known engines are %s" % (engine, ", ".join(ENGINE_NAMES)))
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise DeviceError("request asks for %r %s VFs; a count must be a whole number >= 0" % (count, engine))
    return request


def _check_devices(devices):
    keys = ("bdf", "engine", "function", "numa_node")
    if not isinstance(devices, list) or not all(isinstance(d, dict) and all(k in d for k in keys) for d in devices):
        raise DeviceError("expected the device list of openeuler.kae.device_info (its 'devices'), got %s" % type(devices).__name__)
    return devices


def select_vfs(devices, request=None, prefer_node=None):
    """Free VFs fulfilling REQUEST ({engine: count}) all on one NUMA node, PREFER_NODE first.

    Nodes are tried in the order PREFER_NODE, then ascending; in a node the lowest BDFs are chosen.
    Raises DeviceError naming, for every node, the engines it lacks.
    """
    request = _check_request(request)
    free = [d for d in _check_devices(devices) if d["function"] == "vf" and is_free(d)]
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

def _unpack_facts(facts, side):
    """(devices, {engine: pf_q_num}) from a device list or a device_info result."""
    if isinstance(facts, dict) and "devices" in facts:
        return _check_devices(facts["devices"]), dict(facts.get("pf_q_num") or {})
    try:
        return _check_devices(facts), {}
    except DeviceError as exc:
        raise DeviceError("the %s facts: %s" % (side, exc)) from exc


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


def _autoprobe_driver(sysfs, pf):
    """Driver the kernel binds a new VF to by itself: the host driver when autoprobe is on."""
    autoprobe = sysfs.read(PCI_DEVICES + "/" + pf["bdf"] + "/sriov_drivers_autoprobe")
    return ENGINES[pf["engine"]]["driver"] if autoprobe != "0" else None


def predict_state(sysfs, pf, before, num_vfs, driver):
    """The state {"num_vfs", "vfs"} after ensuring NUM_VFS VFs bound to DRIVER (None: leave binding)."""
    if before["num_vfs"] == num_vfs:
        vfs = dict(before["vfs"])
    else:
        default = _autoprobe_driver(sysfs, pf)
        vfs = dict((bdf, default) for bdf in predicted_vf_bdfs(sysfs, pf, num_vfs))
    if driver:
        vfs = dict((bdf, driver) for bdf in vfs)
    return {"num_vfs": num_vfs, "vfs": vfs}


def check_count_change(pf, num_vfs, libvirt_uri):
    """DeviceError when changing PF's VF count would pull a VF from a domain (or that cannot be ruled out)."""
    if num_vfs > pf["sriov_totalvfs"]:
        raise DeviceError("PF %s supports at most %d VFs (sriov_totalvfs), %d requested" % (pf["bdf"], pf["sriov_totalvfs"], num_vfs))
    if len(pf["vfs"]) == num_vfs or not pf["vfs"]:
        return
    if not _libvirt.HAS_LIBVIRT:
        raise LibvirtMissing("to change the VF count of PF %s (proving that no domain holds one of its VFs)" % pf["bdf"])
    owners, note = hostdev_owners(libvirt_uri)
    assigned = ["%s (domain %s)" % (vf, owners[vf]) for vf in pf["vfs"] if vf in owners]
    if assigned:
        raise DeviceError("cannot change the VF count of PF %s from %d to %d: its VFs %s are assigned to libvirt domains; "
                          "detach them or move those guests first" % (pf["bdf"], len(pf["vfs"]), num_vfs, ", ".join(assigned)))
    if not note["available"]:
        raise DeviceError("cannot change the VF count of PF %s from %d to %d: removing its VFs needs proof that no domain "
                          "holds one, and libvirt could not be asked (%s); start libvirtd or set libvirt_uri"
                          % (pf["bdf"], len(pf["vfs"]), num_vfs, note["reason"]))


def _count_vfs(sysfs, pf_bdf):
    return len([n for n in sysfs.listdir(PCI_DEVICES + "/" + pf_bdf) if n.startswith("virtfn")])


def set_num_vfs(sysfs, pf_bdf, current, num_vfs, timeout_s):
    """Write sriov_numvfs (through 0 when changing a non-zero count) and wait for the kernel's virtfn links."""
    steps = [0, num_vfs] if current and num_vfs else [num_vfs]
    for count in steps:
        try:
            sysfs.write(PCI_DEVICES + "/" + pf_bdf + "/sriov_numvfs", count)
        except SysfsError as exc:
            raise DeviceError("setting %d VFs on PF %s failed: %s" % (count, pf_bdf, exc)) from exc
        if not wait_for(lambda: _count_vfs(sysfs, pf_bdf) == count, timeout_s):
            raise DeviceError("PF %s still has %d VFs %s s after writing %d to sriov_numvfs; check the kernel log (dmesg)"
                              % (pf_bdf, _count_vfs(sysfs, pf_bdf), timeout_s, count))


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


def apply_state(sysfs, pf, before, num_vfs, driver, timeout_s):
    """Make the PF's VFs match: count first, then binding. Returns the state read back afterwards."""
    if before["num_vfs"] != num_vfs:
        set_num_vfs(sysfs, pf["bdf"], before["num_vfs"], num_vfs, timeout_s)
    if driver:
        for vf in read_pf(sysfs, pf["bdf"])["vfs"]:
            bind_vf(sysfs, vf, driver, timeout_s)
    return vf_state(sysfs, pf["bdf"])
