# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Destination remap: give a migrating guest free KAE VFs of the same engines on the destination.

A guest keeps its hostdev host addresses when it migrates, so the destination must have free VFs at
those addresses. When it does not, the guest's XML for the destination points its hostdevs at free
VFs of the same engines on one NUMA node of the destination (the node the guest is pinned to, if any).
Only a VF of the same queue class qualifies (see _queues): the destination driver refuses any other.
In the lab (LAB true: a simulated tree), the VFs the guest's <metadata><kae:vfs> names are its VFs too and are
remapped the same way, since no VF can be passed through there.
"""

from __future__ import annotations

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx, _queues
from ansible_collections.openeuler.kae.plugins.module_utils._devices import DeviceError, check_devices, check_owners_known, is_free, select_vfs


class RemapError(Exception):
    """The destination cannot host the guest's KAE VFs; the message says why and what to do."""


def _device_list(devices, option):
    try:
        return check_devices(devices, option)
    except DeviceError as exc:
        raise RemapError("%s: %s" % (option, exc)) from None


def _vfs_by_bdf(devices):
    return dict((dx.normalise_bdf(d["bdf"]), d) for d in devices if d["function"] == "vf")


def _as_free_for(devices, guest):
    """The destination's devices with the guest's own VFs counted as free.

    A guest defined persistently on both hosts (persist_dest without undefine_source) still
    names its VFs there; they are its own to take back, unless another domain names them too.
    """
    def own(device):
        return device.get("function") == "vf" and (device.get("domains") or [device.get("domain")]) == [guest]
    return [dict(d, domain=None, domains=[]) if own(d) else d for d in devices]


def _reserved_for_others(devices, allowed):
    """DEVICES with every VF outside ALLOWED counted as held: an evacuation gives each guest the VFs its plan chose, so
    that two migrations into one host at the same moment never choose the same free VF."""
    allowed = set(dx.normalise_bdf(bdf) for bdf in allowed)
    held = "another guest (not among allowed_vfs)"
    return [dict(d, domain=held, domains=[held]) if d.get("function") == "vf" and dx.normalise_bdf(d["bdf"]) not in allowed else d
            for d in devices]


def _keeps_addresses(hostdevs, src_vfs, dst_vfs, pinned):
    """True when every guest VF address is a free VF of the same engine and queue class on the destination, on one node."""
    nodes = set()
    for bdf in hostdevs:
        vf = dst_vfs.get(bdf)
        if vf is None or not is_free(vf) or not _queues.same_class(vf, src_vfs[bdf]):
            return False
        nodes.add(vf["numa_node"])
    return len(nodes) == 1 and (pinned is None or nodes == {pinned})


def _request(hostdevs, engines):
    request = {}
    for bdf in hostdevs:
        request[engines[bdf]] = request.get(engines[bdf], 0) + 1
    return request


def _assign(hostdevs, src_vfs, chosen):
    """{guest bdf: destination bdf}, queue class by queue class, both in address order; None when CHOSEN does not pair up."""
    pools = {}
    for vf in sorted(chosen, key=lambda vf: vf["bdf"]):
        pools.setdefault(_queues.class_key(vf), []).append(dx.normalise_bdf(vf["bdf"]))
    mapping = {}
    for bdf in sorted(hostdevs):
        pool = pools.get(_queues.class_key(src_vfs[bdf]))
        if not pool:
            return None
        mapping[bdf] = pool.pop(0)
    return mapping


def _guest_vfs(root, lab):
    """The host addresses of the guest's PCI hostdevs and, in the lab, of its <kae:vfs>."""
    bdfs = [bdf for _element, bdf in dx.pci_hostdevs(root)]
    return bdfs + [bdf for bdf in dx.lab_vf_bdfs(root) if bdf not in bdfs] if lab else bdfs


def plan(guest_xml, source_devices, destination_devices, destination=None, allowed=None, lab=False):
    """Map the guest's KAE VFs to VFs of the destination (only to those in ALLOWED, when given).

    Returns ``{"mapping": {src_bdf: dst_bdf}, "numa_node": int or None, "remapped": bool}``.
    Raises RemapError when the guest holds a PCI hostdev that is no KAE VF of the source, or the
    destination has no node with enough free VFs of the guest VFs' queue classes (on the pinned node when the
    guest is pinned). DESTINATION names the destination host in those messages.
    """
    where = "the destination %s" % destination if destination else "the destination"
    of_host = " of %s" % destination if destination else ""
    root = dx.parse_domain(guest_xml)
    guest = root.findtext("name")
    src_vfs = _vfs_by_bdf(_device_list(source_devices, "source_devices"))
    dst_view = _as_free_for(_device_list(destination_devices, "destination_devices"), guest)
    if allowed is not None:
        dst_view = _reserved_for_others(dst_view, allowed)
    dst_vfs = _vfs_by_bdf(dst_view)
    hostdevs = _guest_vfs(root, lab)
    foreign = [bdf for bdf in hostdevs if bdf not in src_vfs]
    if foreign:
        raise RemapError("guest %s holds PCI hostdevs %s that are not KAE VFs of the source host; KAE live migration allows "
                         "no other passthrough device (remove them, for example with openeuler.kae.guest_config "
                         "remove_foreign_passthrough=true)" % (guest, ", ".join(foreign)))
    if not hostdevs:
        return {"mapping": {}, "numa_node": None, "remapped": False}
    try:
        check_owners_known(dst_view, "choose the destination's VFs for guest %s" % guest)
    except DeviceError as exc:
        raise RemapError("on %s, %s" % (where, exc)) from None
    engines = dict((bdf, src_vfs[bdf]["engine"]) for bdf in hostdevs)
    guest_vfs = [src_vfs[bdf] for bdf in hostdevs]
    class_view = _queues.matching_only(dst_view, guest_vfs)
    pinned = dx.pinned_node(root)
    if _keeps_addresses(hostdevs, src_vfs, dst_vfs, pinned):
        return {"mapping": dict((bdf, bdf) for bdf in hostdevs), "numa_node": dst_vfs[hostdevs[0]]["numa_node"], "remapped": False}
    request = _request(hostdevs, engines)
    wanted = ", ".join("%d %s" % (count, engine) for engine, count in sorted(request.items()))
    prefer = pinned if pinned is not None else src_vfs[hostdevs[0]]["numa_node"]
    try:
        chosen = select_vfs(class_view, request, prefer_node=prefer)
    except DeviceError as exc:
        reasons = _queues.shortages(guest_vfs, [vf for vf in dst_vfs.values() if is_free(vf)], where)
        if any(d["function"] == "vf" for d in class_view):
            reasons.insert(0, str(exc))
        raise RemapError("the destination cannot host guest %s: it needs %s free VFs on one NUMA node%s and %s. Free or create "
                         "VFs there (openeuler.kae.host role) or choose another destination"
                         % (guest, wanted, of_host, "; ".join(reasons))) from exc
    node = chosen[0]["numa_node"]
    if pinned is not None and node != pinned:
        raise RemapError("the destination cannot host guest %s on NUMA node %d%s, where its placement (numatune) pins it: "
                         "node %d lacks free VFs for %s (node %d has them). Free VFs on node %d of the destination, or re-pin the "
                         "guest with openeuler.kae.guest_config" % (guest, pinned, of_host, pinned, wanted, node, pinned))
    mapping = _assign(hostdevs, src_vfs, chosen)
    if mapping is None:
        raise RemapError("the destination cannot host guest %s on node %d%s: the guest holds VFs of one engine in different queue "
                         "classes (%s), and the free VFs chosen there do not pair up with them; give the guest VFs of one queue "
                         "class per engine (openeuler.kae.guest_config), or map its VFs by hand"
                         % (guest, node, of_host, "; ".join("%s: %s" % (vf["bdf"], _queues.describe(vf.get("queue_class"))) for vf in guest_vfs)))
    return {"mapping": mapping, "numa_node": node, "remapped": any(src != dst for src, dst in mapping.items())}


def remap_xml(guest_xml, mapping, lab=False):
    """GUEST_XML with its hostdev source addresses (LAB: and its <kae:vfs>) rewritten per MAPPING (other text as
    ElementTree writes it)."""
    root = dx.parse_domain(guest_xml)
    dx.remap_hostdev_addresses(root, mapping)
    if lab:
        dx.remap_lab_vfs(root, mapping)
    return dx.to_string(root)


def migration_remap(live_xml, persistent_xml, source_devices, destination_devices, destination=None, allowed=None, lab=False):
    """plan() of the guest LIVE_XML, with the destination XML and, for a persistent guest (PERSISTENT_XML), the persistent XML.

    Both XMLs are None when the guest keeps its VF addresses. ALLOWED and LAB as for plan().
    """
    result = plan(live_xml, source_devices, destination_devices, destination=destination, allowed=allowed, lab=lab)
    result["destination_xml"] = remap_xml(live_xml, result["mapping"], lab) if result["remapped"] else None
    result["persistent_xml"] = remap_xml(persistent_xml, result["mapping"], lab) if result["remapped"] and persistent_xml else None
    return result
