# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Destination remap: give a migrating guest free KAE VFs of the same engines on the destination.

A guest keeps its hostdev host addresses when it migrates, so the destination must have free VFs at
those addresses. When it does not, the guest's XML for the destination points its hostdevs at free
VFs of the same engines on one NUMA node of the destination (the node the guest is pinned to, if any).
"""

from __future__ import annotations

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx
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


def _keeps_addresses(hostdevs, engines, dst_vfs, pinned):
    """True when every guest VF address is a free VF of the same engine on the destination, on one node."""
    nodes = set()
    for bdf in hostdevs:
        vf = dst_vfs.get(bdf)
        if vf is None or not is_free(vf) or vf["engine"] != engines[bdf]:
            return False
        nodes.add(vf["numa_node"])
    return len(nodes) == 1 and (pinned is None or nodes == {pinned})


def _request(hostdevs, engines):
    request = {}
    for bdf in hostdevs:
        request[engines[bdf]] = request.get(engines[bdf], 0) + 1
    return request


def _assign(hostdevs, engines, chosen):
    """{guest bdf: destination bdf}, engine by engine, both in address order."""
    pools = {}
    for vf in sorted(chosen, key=lambda vf: vf["bdf"]):
        pools.setdefault(vf["engine"], []).append(dx.normalise_bdf(vf["bdf"]))
    return dict((bdf, pools[engines[bdf]].pop(0)) for bdf in sorted(hostdevs))


def plan(guest_xml, src_devices, dst_devices):
    """Map the guest's KAE VFs to VFs of the destination.

    Returns ``{"mapping": {src_bdf: dst_bdf}, "numa_node": int or None, "remapped": bool}``.
    Raises RemapError when the guest holds a PCI hostdev that is no KAE VF of the source, or the
    destination has no node with enough free VFs (on the pinned node when the guest is pinned).
    """
    root = dx.parse_domain(guest_xml)
    guest = root.findtext("name")
    src_vfs = _vfs_by_bdf(_device_list(src_devices, "src_devices"))
    dst_view = _as_free_for(_device_list(dst_devices, "dst_devices"), guest)
    dst_vfs = _vfs_by_bdf(dst_view)
    hostdevs = [bdf for _element, bdf in dx.pci_hostdevs(root)]
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
        raise RemapError("on the destination, %s" % exc) from None
    engines = dict((bdf, src_vfs[bdf]["engine"]) for bdf in hostdevs)
    pinned = dx.pinned_node(root)
    if _keeps_addresses(hostdevs, engines, dst_vfs, pinned):
        return {"mapping": dict((bdf, bdf) for bdf in hostdevs), "numa_node": dst_vfs[hostdevs[0]]["numa_node"], "remapped": False}
    request = _request(hostdevs, engines)
    wanted = ", ".join("%d %s" % (count, engine) for engine, count in sorted(request.items()))
    prefer = pinned if pinned is not None else src_vfs[hostdevs[0]]["numa_node"]
    try:
        chosen = select_vfs(dst_view, request, prefer_node=prefer)
    except DeviceError as exc:
        raise RemapError("the destination cannot host guest %s: it needs %s free VFs on one NUMA node and %s. Free or create "
                         "VFs there (openeuler.kae.host role) or choose another destination" % (guest, wanted, exc)) from exc
    node = chosen[0]["numa_node"]
    if pinned is not None and node != pinned:
        raise RemapError("the destination cannot host guest %s on NUMA node %d, where its placement (numatune) pins it: "
                         "node %d lacks free VFs for %s (node %d has them). Free VFs on node %d of the destination, or re-pin the "
                         "guest with openeuler.kae.guest_config" % (guest, pinned, pinned, wanted, node, pinned))
    mapping = _assign(hostdevs, engines, chosen)
    return {"mapping": mapping, "numa_node": node, "remapped": any(src != dst for src, dst in mapping.items())}


def remap_xml(guest_xml, mapping):
    """GUEST_XML with its hostdev source addresses rewritten per MAPPING (other text as ElementTree writes it)."""
    root = dx.parse_domain(guest_xml)
    dx.remap_hostdev_addresses(root, mapping)
    return dx.to_string(root)
