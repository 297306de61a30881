# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""One hypervisor's capacity and guests, read from libvirt in the shapes openeuler.kae.place_guests takes.

capacity  {host: {memory_mib: free MiB, vcpus: free vCPUs}}
guests    [{name, host, memory_mib, vcpus, pinned_node, vfs: [BDF]}]

Every libvirt error fails the whole read (HypervisorError naming the URI and the domain): a list that misses a
domain it could not read would look like a host with fewer guests and more room than it has.
"""

from __future__ import annotations

from ansible_collections.openeuler.kae.plugins.module_utils import _devices, _libvirt
from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx

MIB = 1024 * 1024
# virDomainState values, in libvirt's order (libvirt-domain.h).
STATE_NAMES = ("nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended")


class HypervisorError(Exception):
    """libvirt could not answer; the message names the URI (and the domain) and libvirt's own error."""


def state_name(code):
    return STATE_NAMES[code] if 0 <= code < len(STATE_NAMES) else "unknown"


def kib_to_mib(kib):
    """KiB rounded up to whole MiB: a guest needs all of its memory on the destination."""
    return -(-kib // 1024)


def read_node(conn, uri):
    """The host's totals: {memory_mib, cpus, free_memory_mib}."""
    try:
        info = conn.getInfo()
        free_bytes = conn.getFreeMemory()
    except _libvirt.libvirt.libvirtError as exc:
        raise HypervisorError("cannot read the memory and CPUs of the host at %s: %s" % (uri, _libvirt.error_text(exc))) from exc
    # The Python binding's getInfo() gives the node's memory in MiB already (virNodeInfo.memory is KiB).
    return {"memory_mib": info[1], "cpus": info[2], "free_memory_mib": free_bytes // MIB}


def read_domain(dom, uri, lab=False):
    """{name, state, active, memory_mib, vcpus, pinned_node, vfs} of one domain; HypervisorError when it cannot be read.

    LAB: the VFs the domain's <metadata><kae:vfs> names are among its vfs (a simulated tree, as device_info counts them).
    """
    try:
        name = dom.name()
    except _libvirt.libvirt.libvirtError as exc:
        raise HypervisorError("cannot read the name of a domain on %s: %s" % (uri, _libvirt.error_text(exc))) from exc
    try:
        state, max_memory_kib, _memory_kib, vcpus, _cpu_time = dom.info()
        active = bool(dom.isActive())
        # A running domain's live XML holds what it uses now (hotplugged devices included).
        xml = dom.XMLDesc(0 if active else _libvirt.libvirt.VIR_DOMAIN_XML_INACTIVE)
        root = dx.parse_domain(xml)
    except _libvirt.libvirt.libvirtError as exc:
        raise HypervisorError("cannot read domain %s on %s: %s" % (name, uri, _libvirt.error_text(exc))) from exc
    except dx.DomainXMLError as exc:
        raise HypervisorError("cannot read the definition of domain %s on %s: %s" % (name, uri, exc)) from exc
    return {"name": name, "state": state_name(state), "active": active, "memory_mib": kib_to_mib(max_memory_kib),
            "vcpus": vcpus, "pinned_node": dx.pinned_node(root), "vfs": _devices.hostdev_bdfs(xml, lab)}


def list_domains(conn, uri, active_only):
    flags = _libvirt.libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE if active_only else 0
    try:
        return conn.listAllDomains(flags)
    except _libvirt.libvirt.libvirtError as exc:
        raise HypervisorError("cannot list the domains on %s: %s" % (uri, _libvirt.error_text(exc))) from exc


def kae_vf_addresses(devices):
    """The addresses of the VFs in a checked device_info device list."""
    return set(device["bdf"] for device in devices if device["function"] == "vf")


def as_guest(domain, host):
    """DOMAIN (read_domain) as a guest entry of place_guests, with HOST as its source."""
    return {"name": domain["name"], "host": host, "memory_mib": domain["memory_mib"], "vcpus": domain["vcpus"],
            "pinned_node": domain["pinned_node"], "vfs": domain["vfs"]}


def read_host(conn, uri, host, active_only=True, kae_vfs=None, lab=False):
    """The module's result for an open connection: capacity, totals, guests and their states.

    Free vCPUs count every running domain (whatever O(kae_only) keeps), one host CPU per vCPU, and never go
    below 0; free memory is what libvirt reports free, in whole MiB.
    """
    node = read_node(conn, uri)
    domains = sorted((read_domain(dom, uri, lab) for dom in list_domains(conn, uri, active_only)), key=lambda d: d["name"])
    used = sum(domain["vcpus"] for domain in domains if domain["active"])
    node["vcpus_used"] = used
    node["active_domains"] = sum(1 for domain in domains if domain["active"])
    kept = [d for d in domains if kae_vfs is None or kae_vfs.intersection(d["vfs"])]
    return {"host": host, "uri": uri, "totals": node,
            "capacity": {host: {"memory_mib": node["free_memory_mib"], "vcpus": max(0, node["cpus"] - used)}},
            "guests": [as_guest(domain, host) for domain in kept],
            "states": dict((domain["name"], domain["state"]) for domain in kept)}
