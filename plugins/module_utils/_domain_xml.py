# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Pure ElementTree edits of a libvirt domain XML for KAE passthrough live migration.

Everything here works on an ``xml.etree.ElementTree`` element of ``<domain>`` and
touches only what it is asked to: KAE hostdevs and the ``<qemu:override>`` entries of
their aliases, the QEMU ``--trace`` arguments of the trace profiles, NUMA placement,
and hostdev source addresses (remap).
"""

from __future__ import annotations

import collections
import re
import xml.etree.ElementTree as ET

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
QEMU_COMMANDLINE = "{%s}commandline" % QEMU_NS
QEMU_ARG = "{%s}arg" % QEMU_NS
QEMU_OVERRIDE = "{%s}override" % QEMU_NS
QEMU_DEVICE = "{%s}device" % QEMU_NS
QEMU_FRONTEND = "{%s}frontend" % QEMU_NS
QEMU_PROPERTY = "{%s}property" % QEMU_NS
# User aliases (libvirt keeps only "ua-" aliases in a definition) of the KAE hostdevs: the <qemu:override>
# entries of these aliases are this collection's to manage, every other entry is left alone.
KAE_ALIAS_PREFIX = "ua-kae-"
_KAE_ALIAS_RE = re.compile(r"ua-kae-[a-z0-9][a-z0-9-]{0,40}")
TRACE_FLAGS = ("--trace", "-trace")
PLACEMENTS = ("none", "numatune", "vcpu", "cputune")

# Keep the conventional prefix when the XML is written back (libvirt accepts any prefix,
# but operators read and diff this XML).
ET.register_namespace("qemu", QEMU_NS)

_BDF_RE = re.compile(r"^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$")


class DomainXMLError(Exception):
    """The XML or a value given for it cannot be used; the message says why and what to do."""


# What the guest role's hostdev.xml.j2 renders: hostdevs [(element, bdf)] and the <qemu:device> override
# entries of their aliases (empty for the variants without one).
KaeFragment = collections.namedtuple("KaeFragment", ["hostdevs", "overrides"])


# ---------------------------------------------------------------------------
# Parsing and writing


def parse_domain(xml_text):
    """Parse a domain XML document and return its <domain> element."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise DomainXMLError("the domain XML is not well-formed XML (%s)" % exc) from exc
    if root.tag != "domain":
        raise DomainXMLError("expected a libvirt <domain> document, got <%s>" % root.tag)
    return root


def to_string(root):
    """Serialise a domain element, indented, for defineXML and for diffs."""
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def canonical(xml_text):
    """Return a comparison form of XML text that ignores formatting and attribute order."""
    return ET.canonicalize(xml_text, strip_text=True)


def same_xml(left, right):
    """True when two domain documents (text) say the same thing."""
    return canonical(left) == canonical(right)


def _devices(root):
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    return devices


# ---------------------------------------------------------------------------
# PCI addresses


def parse_bdf(bdf):
    """Split a PCI address ``DDDD:BB:SS.F`` (domain optional) into four ints."""
    match = _BDF_RE.match(str(bdf).strip())
    if not match:
        raise DomainXMLError("%r is not a PCI address; expected DOMAIN:BUS:SLOT.FUNCTION such as 0000:31:00.1" % (bdf,))
    domain, bus, slot, function = match.groups()
    return int(domain or "0", 16), int(bus, 16), int(slot, 16), int(function, 16)


def format_bdf(domain, bus, slot, function):
    """Return the canonical ``0000:31:00.1`` form."""
    return "%04x:%02x:%02x.%x" % (domain, bus, slot, function)


def normalise_bdf(bdf):
    """Return BDF in canonical lower-case form with the PCI domain."""
    return format_bdf(*parse_bdf(bdf))


def _address_bdf(address):
    try:
        return format_bdf(*(int(address.get(key, "0"), 0) for key in ("domain", "bus", "slot", "function")))
    except ValueError:
        return None


def _set_address_bdf(address, bdf):
    domain, bus, slot, function = parse_bdf(bdf)
    address.set("domain", "0x%04x" % domain)
    address.set("bus", "0x%02x" % bus)
    address.set("slot", "0x%02x" % slot)
    address.set("function", "0x%x" % function)


def hostdev_bdf(hostdev):
    """Host PCI address of a PCI subsystem <hostdev>, or None for any other kind."""
    if hostdev.get("mode", "subsystem") != "subsystem" or hostdev.get("type") != "pci":
        return None
    address = hostdev.find("source/address")
    return None if address is None else _address_bdf(address)


def pci_hostdevs(root):
    """Return ``[(element, bdf)]`` for the PCI subsystem hostdevs of the domain."""
    found = []
    for hostdev in root.findall("devices/hostdev"):
        bdf = hostdev_bdf(hostdev)
        if bdf is not None:
            found.append((hostdev, bdf))
    return found


# ---------------------------------------------------------------------------
# Hostdevs


def parse_hostdev_fragments(text):
    """Parse the XML text the guest role's hostdev.xml.j2 renders: zero or more <hostdev> elements and
    at most one <qemu:override> holding the override entries of those hostdevs' aliases.

    Returns a KaeFragment. Every hostdev must be a PCI subsystem hostdev with a source address, no address
    may appear twice, an alias must be a KAE user alias (``ua-kae-...``) and each override entry must name
    the alias of one of these hostdevs and hold only ``<qemu:frontend>`` properties.
    """
    try:
        wrapper = ET.fromstring("<hostdevs xmlns:qemu='%s'>%s</hostdevs>" % (QEMU_NS, text or ""))
    except ET.ParseError as exc:
        raise DomainXMLError("hostdev_xml is not well-formed (%s); render it with the guest role's hostdev.xml.j2" % exc) from exc
    hostdevs = [element for element in wrapper if element.tag != QEMU_OVERRIDE]
    overrides = [element for element in wrapper if element.tag == QEMU_OVERRIDE]
    if len(overrides) > 1:
        raise DomainXMLError("hostdev_xml holds %d <qemu:override> elements; give at most one" % len(overrides))
    wanted = _parse_wanted_hostdevs(hostdevs)
    aliases = set(alias for alias in (_kae_alias(element) for element, _bdf in wanted) if alias)
    devices = _parse_override_devices(overrides[0], aliases) if overrides else []
    return KaeFragment(wanted, devices)


def _parse_wanted_hostdevs(elements):
    wanted = []
    seen = set()
    aliases = set()
    for element in elements:
        bdf = hostdev_bdf(element) if element.tag == "hostdev" else None
        address = element.find("source/address")
        if bdf is None and element.tag == "hostdev" and address is not None:
            raise DomainXMLError("hostdev_xml holds a <hostdev> whose source address %s is not a PCI address; "
                                 "give VF addresses like 0000:31:00.1" % " ".join("%s='%s'" % i for i in sorted(address.items())))
        if bdf is None:
            raise DomainXMLError(
                "hostdev_xml holds %s, which is not a <hostdev mode='subsystem' type='pci'> with a "
                "<source><address .../></source>; only KAE VF hostdevs belong there" % describe_element(element))
        if bdf in seen:
            raise DomainXMLError("hostdev_xml names %s twice; each VF can be given to a guest once" % bdf)
        seen.add(bdf)
        alias = element.find("alias")
        if alias is not None:
            name = alias.get("name", "")
            if not _KAE_ALIAS_RE.fullmatch(name):
                raise DomainXMLError("hostdev_xml gives the hostdev of %s the alias %r; a KAE hostdev's alias must be a user alias "
                                     "%s<letters, digits, '-'> (the guest role's template names them)" % (bdf, name, KAE_ALIAS_PREFIX))
            if name in aliases:
                raise DomainXMLError("hostdev_xml gives the alias %s to two hostdevs; each alias names one device" % name)
            aliases.add(name)
        # libvirt writes its default back; stating it keeps the comparison with the definition exact.
        element.attrib.setdefault("managed", "no")
        wanted.append((element, bdf))
    return wanted


def _parse_override_devices(override, aliases):
    """The <qemu:device> entries of an override, checked to target one of ALIASES and to override frontend properties only."""
    devices = []
    for device in override:
        alias = device.get("alias")
        if device.tag != QEMU_DEVICE or alias not in aliases:
            raise DomainXMLError(
                "hostdev_xml's <qemu:override> holds %s; it may only hold <qemu:device alias='...'> entries for "
                "the aliases of its own hostdevs (%s)" % (_describe_qemu(device), ", ".join(sorted(aliases)) or "none given"))
        if any(other.get("alias") == alias for other in devices):
            raise DomainXMLError("hostdev_xml's <qemu:override> names alias %s twice" % alias)
        for frontend in device:
            properties = list(frontend)
            if frontend.tag != QEMU_FRONTEND or not properties or any(
                    prop.tag != QEMU_PROPERTY or not prop.get("name") or len(prop) for prop in properties):
                raise DomainXMLError("the <qemu:override> entry of %s holds %s; only <qemu:frontend> with "
                                     "<qemu:property name='...' type='...' value='...'/> elements belong there"
                                     % (alias, _describe_qemu(frontend)))
        devices.append(device)
    return devices


def _describe_qemu(element):
    tag = element.tag.replace("{%s}" % QEMU_NS, "qemu:")
    attrs = " ".join("%s='%s'" % item for item in sorted(element.items()))
    return "<%s%s>" % (tag, " " + attrs if attrs else "")


def _kae_alias(hostdev):
    """The hostdev's alias when it is a KAE user alias, else None."""
    alias = hostdev.find("alias")
    name = alias.get("name", "") if alias is not None else ""
    return name if name.startswith(KAE_ALIAS_PREFIX) else None


def describe_element(element):
    """A short, readable description of a device element for messages."""
    attrs = " ".join("%s='%s'" % item for item in sorted(element.items()))
    text = "<%s%s>" % (element.tag, " " + attrs if attrs else "")
    bdf = hostdev_bdf(element) if element.tag == "hostdev" else None
    if bdf is None:
        address = element.find("source/address")
        bdf = _address_bdf(address) if address is not None and address.get("type", "pci") == "pci" else None
    return "%s (host PCI %s)" % (text, bdf) if bdf else text


def passthrough_devices(root):
    """Every passthrough device of the domain: <hostdev> of any kind and <interface type='hostdev'>."""
    devices = root.find("devices")
    if devices is None:
        return []
    return [elem for elem in devices if elem.tag == "hostdev" or (elem.tag == "interface" and elem.get("type") == "hostdev")]


def passthrough_bdf(element):
    """Host PCI address of a passthrough device element (PCI <hostdev>, <interface type='hostdev'>), or None."""
    if element.tag == "hostdev":
        return hostdev_bdf(element)
    address = element.find("source/address")
    return _address_bdf(address) if address is not None and address.get("type") == "pci" else None


def foreign_passthrough(root, is_kae_vf):
    """Passthrough devices that are not KAE VFs (``is_kae_vf(bdf)`` decides for PCI hostdevs)."""
    foreign = []
    for element in passthrough_devices(root):
        bdf = hostdev_bdf(element) if element.tag == "hostdev" else None
        if bdf is None or not is_kae_vf(bdf):
            foreign.append(element)
    return foreign


def remove_elements(root, elements):
    """Remove device elements from <devices>."""
    devices = _devices(root)
    for element in elements:
        devices.remove(element)


def _merge_hostdev(current, wanted):
    """Make CURRENT say what WANTED says, keeping what libvirt added (guest address, alias).

    The host address in <source> is the key both were matched by, so it is not rewritten
    (the same address may be spelt 0x0 or 0x00).
    """
    changed = dict(current.items()) != dict(wanted.items())
    if changed:
        current.attrib.clear()
        current.attrib.update(wanted.attrib)
    if wanted.find("alias") is None and _kae_alias(current):
        # The variant without aliases (openEuler's migration='on') was asked for: the alias was ours.
        current.remove(current.find("alias"))
        changed = True
    for child in wanted:
        if child.tag == "source":
            continue
        existing = current.find(child.tag)
        if existing is not None and _same_element(existing, child):
            continue
        changed = True
        if existing is not None:
            current.remove(existing)
        current.append(_copy(child))
    return changed


def _copy(element):
    return ET.fromstring(ET.tostring(element, encoding="unicode"))


def set_kae_hostdevs(root, wanted, is_kae_vf):
    """Make the domain's KAE hostdevs exactly WANTED (``[(element, bdf)]``).

    Existing KAE hostdevs not wanted are removed; wanted ones are merged into an
    existing hostdev of the same address or appended. A wanted address held by a
    hostdev that is not a KAE VF is merged too (the caller asked for that device).
    Returns ``{"added": [...], "removed": [...], "updated": [...]}`` (BDF lists).
    """
    devices = _devices(root)
    present = dict((bdf, element) for element, bdf in pci_hostdevs(root))
    wanted_bdfs = set(bdf for _element, bdf in wanted)
    summary = {"added": [], "removed": [], "updated": []}
    for bdf, element in sorted(present.items()):
        if bdf not in wanted_bdfs and is_kae_vf(bdf):
            devices.remove(element)
            summary["removed"].append(bdf)
    for element, bdf in wanted:
        if bdf in present:
            if _merge_hostdev(present[bdf], element):
                summary["updated"].append(bdf)
        else:
            _insert_device(devices, _copy(element))
            summary["added"].append(bdf)
    return summary


def set_kae_overrides(root, wanted):
    """Make the domain's <qemu:override> entries of KAE aliases (``ua-kae-...``) exactly WANTED (<qemu:device> elements).

    Entries of other aliases are kept; an override left empty is removed. Returns
    ``{"added": [...], "removed": [...], "updated": [...]}`` (alias lists).
    """
    summary = {"added": [], "removed": [], "updated": []}
    override = root.find(QEMU_OVERRIDE)
    present = {}
    for device in override.findall(QEMU_DEVICE) if override is not None else []:
        alias = device.get("alias") or ""
        if not alias.startswith(KAE_ALIAS_PREFIX):
            continue
        if alias in present:
            override.remove(device)  # a second entry for one alias: libvirt would apply only one
            summary["updated"].append(alias)
        else:
            present[alias] = device
    wanted_aliases = set(device.get("alias") for device in wanted)
    for alias, device in sorted(present.items()):
        if alias not in wanted_aliases:
            override.remove(device)
            summary["removed"].append(alias)
    for device in wanted:
        alias = device.get("alias")
        current = present.get(alias)
        if current is not None and _same_element(current, device):
            continue
        if override is None:
            override = ET.SubElement(root, QEMU_OVERRIDE)
        if current is None:
            override.append(_copy(device))
            summary["added"].append(alias)
        else:
            override.insert(list(override).index(current), _copy(device))
            override.remove(current)
            if alias not in summary["updated"]:
                summary["updated"].append(alias)
    if override is not None and len(override) == 0:
        root.remove(override)
    return summary


def kae_override_aliases(root):
    """Aliases of the domain's <qemu:override> entries that belong to KAE hostdevs."""
    return [device.get("alias") for device in root.findall("%s/%s" % (QEMU_OVERRIDE, QEMU_DEVICE))
            if (device.get("alias") or "").startswith(KAE_ALIAS_PREFIX)]


def _same_element(left, right):
    return canonical(ET.tostring(left, encoding="unicode")) == canonical(ET.tostring(right, encoding="unicode"))


def _insert_device(devices, element):
    """Append after the last device of the same kind, so libvirt's device order is kept."""
    same = [index for index, child in enumerate(devices) if child.tag == element.tag]
    if same:
        devices.insert(same[-1] + 1, element)
    else:
        devices.append(element)


# ---------------------------------------------------------------------------
# QEMU trace arguments


def _trace_pairs(commandline):
    """Return ``[(flag_element, value_element)]`` for ``--trace VALUE`` argument pairs."""
    args = commandline.findall(QEMU_ARG)
    pairs = []
    index = 0
    while index < len(args):
        if args[index].get("value") in TRACE_FLAGS and index + 1 < len(args):
            pairs.append((args[index], args[index + 1]))
            index += 2
        else:
            index += 1
    return pairs


def trace_patterns(root):
    """The ``--trace`` values of the domain's qemu:commandline, in order."""
    commandline = root.find(QEMU_COMMANDLINE)
    if commandline is None:
        return []
    return [value.get("value") for _flag, value in _trace_pairs(commandline)]


def set_trace_args(root, wanted, managed):
    """Make the domain's ``--trace`` arguments among MANAGED exactly WANTED.

    MANAGED is every pattern this collection may set (all profiles); other
    qemu:commandline arguments, including ``--trace`` of other patterns, are kept.
    The qemu XML namespace is declared on <domain> when the element is written.
    Returns ``{"added": [...], "removed": [...]}``.
    """
    summary = {"added": [], "removed": []}
    commandline = root.find(QEMU_COMMANDLINE)
    present = []
    if commandline is not None:
        for flag, value in _trace_pairs(commandline):
            pattern = value.get("value")
            if pattern in managed and (pattern not in wanted or pattern in present):
                commandline.remove(flag)
                commandline.remove(value)
                summary["removed"].append(pattern)
            else:
                present.append(pattern)
    missing = [pattern for pattern in wanted if pattern not in present]
    if missing and commandline is None:
        # libvirt writes <qemu:commandline> before <qemu:override>.
        commandline = ET.Element(QEMU_COMMANDLINE)
        override = root.find(QEMU_OVERRIDE)
        root.insert(list(root).index(override) if override is not None else len(root), commandline)
    for pattern in missing:
        ET.SubElement(commandline, QEMU_ARG, {"value": TRACE_FLAGS[0]})
        ET.SubElement(commandline, QEMU_ARG, {"value": pattern})
        summary["added"].append(pattern)
    if commandline is not None and len(commandline) == 0:
        root.remove(commandline)
    return summary


# ---------------------------------------------------------------------------
# NUMA placement


def parse_cpuset(text):
    """``'0-3,8'`` -> ``[0, 1, 2, 3, 8]``."""
    cpus = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        low, _sep, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return sorted(cpus)


def format_cpuset(cpus):
    """``[0, 1, 2, 3, 8]`` -> ``'0-3,8'``."""
    ranges = []
    for cpu in sorted(set(cpus)):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(low) if low == high else "%d-%d" % (low, high) for low, high in ranges)


def node_cpus(capabilities_xml, node):
    """CPU ids of NUMA node NODE from libvirt's host capabilities XML."""
    caps = ET.fromstring(capabilities_xml)
    cells = caps.findall("host/topology/cells/cell")
    for cell in cells:
        if cell.get("id") == str(node):
            cpus = [int(cpu.get("id")) for cpu in cell.findall("cpus/cpu")]
            if cpus:
                return cpus
            raise DomainXMLError("NUMA node %s of this host has no CPUs to pin the guest to; use placement 'numatune'" % node)
    known = ", ".join(cell.get("id") for cell in cells) or "none reported"
    raise DomainXMLError("NUMA node %s does not exist on this host (nodes: %s); choose a node the KAE VFs sit on" % (node, known))


def vcpu_count(root):
    """The domain's maximum vCPU count."""
    vcpu = root.find("vcpu")
    try:
        return int(vcpu.text) if vcpu is not None else 1
    except (TypeError, ValueError):
        raise DomainXMLError("the domain's <vcpu> element does not hold a number (%r)" % vcpu.text)


def pinned_node(root):
    """The single NUMA node the guest's memory is bound to by <numatune>, or None."""
    memory = root.find("numatune/memory")
    if memory is None or memory.get("nodeset") is None:
        return None
    nodes = parse_cpuset(memory.get("nodeset"))
    return nodes[0] if len(nodes) == 1 else None


def _ensure_child(parent, tag, before=None):
    child = parent.find(tag)
    if child is None:
        child = ET.Element(tag)
        index = len(parent)
        if before:
            for position, sibling in enumerate(parent):
                if sibling.tag in before:
                    index = position
                    break
        parent.insert(index, child)
    return child


def _set_attrs(element, attrs, drop=()):
    changed = False
    for key in drop:
        if key in element.attrib:
            del element.attrib[key]
            changed = True
    for key, value in attrs.items():
        if element.get(key) != value:
            element.set(key, value)
            changed = True
    return changed


# Elements that follow <cputune>/<numatune> in libvirt's own order (<devices> at least).
_AFTER_TUNING = ("resource", "sysinfo", "bootloader", "os", "features", "cpu", "clock", "on_poweroff",
                 "on_reboot", "on_crash", "pm", "devices")


def set_placement(root, placement, node, cpus=None):
    """Pin the guest to NUMA node NODE.

    ``numatune``: memory strictly on the node. ``vcpu``: that, plus every vCPU allowed
    only the node's CPUs (``<vcpu cpuset>``). ``cputune``: memory on the node plus a
    ``<vcpupin>`` for each vCPU and an ``<emulatorpin>`` on the node's CPUs. ``none``
    leaves placement alone. Returns a list of the elements changed (for messages).
    """
    if placement == "none":
        return []
    if placement not in PLACEMENTS:
        raise DomainXMLError("placement %r is not one of %s" % (placement, ", ".join(PLACEMENTS)))
    changed = []
    numatune = _ensure_child(root, "numatune", before=_AFTER_TUNING)
    memory = _ensure_child(numatune, "memory")
    if _set_attrs(memory, {"mode": "strict", "nodeset": str(node)}, drop=("placement",)):
        changed.append("numatune")
    if placement == "numatune":
        return changed
    cpuset = format_cpuset(cpus or [])
    if not cpuset:
        raise DomainXMLError("placement %r needs the CPUs of NUMA node %s" % (placement, node))
    if placement == "vcpu":
        vcpu = _ensure_child(root, "vcpu", before=_AFTER_TUNING)
        if _set_attrs(vcpu, {"placement": "static", "cpuset": cpuset}):
            changed.append("vcpu")
        return changed
    cputune = _ensure_child(root, "cputune", before=("numatune",) + _AFTER_TUNING)
    before_pins = ET.tostring(cputune, encoding="unicode")
    pins = dict((pin.get("vcpu"), pin) for pin in cputune.findall("vcpupin"))
    for index in range(vcpu_count(root)):
        pin = pins.get(str(index))
        if pin is None:
            pin = ET.SubElement(cputune, "vcpupin", {"vcpu": str(index)})
        pin.set("cpuset", cpuset)
    _ensure_child(cputune, "emulatorpin").set("cpuset", cpuset)
    if ET.tostring(cputune, encoding="unicode") != before_pins:
        changed.append("cputune")
    return changed


# ---------------------------------------------------------------------------
# Remap


def remap_hostdev_addresses(root, mapping):
    """Rewrite the host source address of PCI hostdevs per MAPPING ``{old_bdf: new_bdf}``."""
    for hostdev, bdf in pci_hostdevs(root):
        new = mapping.get(bdf)
        if new and new != bdf:
            _set_address_bdf(hostdev.find("source/address"), new)


# ---------------------------------------------------------------------------
# Simulated VF holdings (the lab only)
#
# The lab cannot pass a VF through, so the VFs a lab guest holds are written into its <metadata> instead:
# <metadata><kae:vfs xmlns:kae="LAB_VFS_NS"><kae:vf address="0000:75:00.1"/>...</kae:vfs></metadata>.
# Readers count them as held only for a simulated sysfs tree (see _devices.is_lab_tree); libvirt keeps the
# element in the definition and the live XML and carries it along with a migration.

LAB_VFS_NS = "http://openeuler.org/xmlns/kae/lab-vfs/1.0"
LAB_VFS_PREFIX = "kae"
LAB_VFS = "{%s}vfs" % LAB_VFS_NS
LAB_VF = "{%s}vf" % LAB_VFS_NS

ET.register_namespace(LAB_VFS_PREFIX, LAB_VFS_NS)


def lab_vf_bdfs(root):
    """The VF addresses the domain's <metadata><kae:vfs> names (normalised, in document order); [] without one.

    An address that is not a PCI address is a DomainXMLError: a holding that cannot be read is not "no holding".
    """
    found = []
    for element in root.findall("metadata/%s/%s" % (LAB_VFS, LAB_VF)):
        bdf = normalise_bdf(element.get("address", ""))
        if bdf not in found:
            found.append(bdf)
    return found


def lab_vfs_element(bdfs, namespace=LAB_VFS_NS):
    """The <kae:vfs> element naming BDFS (normalised, sorted); NAMESPACE None gives it without one."""
    prefix = "{%s}" % namespace if namespace else ""
    element = ET.Element(prefix + "vfs")
    for bdf in sorted(normalise_bdf(bdf) for bdf in bdfs):
        ET.SubElement(element, prefix + "vf", {"address": bdf})
    return element


def lab_vfs_fragment(bdfs):
    """The <vfs> element naming BDFS as virDomainSetMetadata takes it: without a namespace (libvirt puts the element and
    its children into the one it is given, with the prefix it is given)."""
    return ET.tostring(lab_vfs_element(bdfs, namespace=None), encoding="unicode")


def set_lab_vfs(root, bdfs):
    """Make the domain's <metadata><kae:vfs> name exactly BDFS (no element at all for none).

    Returns {"added": [...], "removed": [...]} (sorted addresses); other metadata is left alone.
    """
    wanted = sorted(set(normalise_bdf(bdf) for bdf in bdfs))
    current = lab_vf_bdfs(root)
    report = {"added": [bdf for bdf in wanted if bdf not in current], "removed": sorted(bdf for bdf in current if bdf not in wanted)}
    metadata = root.find("metadata")
    if metadata is not None:
        for element in metadata.findall(LAB_VFS):
            metadata.remove(element)
    if wanted:
        if metadata is None:
            metadata = _ensure_child(root, "metadata", before=("maxMemory", "memory", "currentMemory") + _AFTER_TUNING)
        metadata.append(lab_vfs_element(wanted))
    elif metadata is not None and len(metadata) == 0:
        root.remove(metadata)
    return report


def remap_lab_vfs(root, mapping):
    """Rewrite the addresses of the domain's <kae:vfs> per MAPPING ``{old_bdf: new_bdf}`` (the lab's remap)."""
    for element in root.findall("metadata/%s/%s" % (LAB_VFS, LAB_VF)):
        new = mapping.get(normalise_bdf(element.get("address", "")))
        if new:
            element.set("address", normalise_bdf(new))


def without_lab_vfs(xml_text):
    """XML_TEXT with its <kae:vfs> metadata taken out (to tell a change of the simulated holdings from the rest)."""
    root = parse_domain(xml_text)
    set_lab_vfs(root, [])
    return to_string(root)
