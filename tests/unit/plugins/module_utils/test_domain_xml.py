# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx

QEMU = "{%s}" % dx.QEMU_NS

DOMAIN = """<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>vm1</name>
  <memory unit='KiB'>1048576</memory>
  <vcpu placement='static'>4</vcpu>
  <os><type arch='aarch64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><source file='/img/vm1.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <driver name='vfio'/>
      <source><address domain='0x0000' bus='0x31' slot='0x00' function='0x1'/></source>
      <alias name='hostdev0'/>
      <address type='pci' domain='0x0000' bus='0x07' slot='0x00' function='0x0'/>
    </hostdev>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x41' slot='0x00' function='0x0'/></source>
    </hostdev>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-s'/>
    <qemu:arg value='--trace'/>
    <qemu:arg value='migrate_set_state'/>
    <qemu:arg value='--trace'/>
    <qemu:arg value='vm_state_notify'/>
  </qemu:commandline>
</domain>
"""

KAE = {"0000:31:00.1", "0000:31:00.2", "0000:76:00.1"}
MANAGED = ("all_vcpus*", "vm_state_notify", "vmstate_downtime_checkpoint")


def is_kae(bdf):
    return bdf in KAE


def hostdev(bdf_bus, function="1", extra=" migration='on'"):
    return ("<hostdev mode='subsystem' type='pci' managed='no'%s><driver name='vfio'/><source>"
            "<address domain='0x0000' bus='0x%s' slot='0x00' function='0x%s'/></source></hostdev>" % (extra, bdf_bus, function))


def commandline_values(root):
    return [arg.get("value") for arg in root.findall(QEMU + "commandline/" + QEMU + "arg")]


@pytest.mark.parametrize("text, expected", [
    ("0000:31:00.1", (0, 0x31, 0, 1)),
    ("31:00.1", (0, 0x31, 0, 1)),
    ("000A:7D:1f.7", (0xA, 0x7D, 0x1F, 7)),
])
def test_parse_bdf(text, expected):
    assert dx.parse_bdf(text) == expected
    assert dx.parse_bdf(dx.format_bdf(*expected)) == expected


@pytest.mark.parametrize("text", ["", "31:00", "0000:31:00.8", "zz:00.1", None])
def test_parse_bdf_rejects_with_example(text):
    with pytest.raises(dx.DomainXMLError, match="expected DOMAIN:BUS:SLOT.FUNCTION such as 0000:31:00.1"):
        dx.parse_bdf(text)


def test_parse_domain_rejects_garbage_and_other_documents():
    with pytest.raises(dx.DomainXMLError, match="not well-formed"):
        dx.parse_domain("<domain>")
    with pytest.raises(dx.DomainXMLError, match="got <network>"):
        dx.parse_domain("<network/>")


def test_pci_hostdevs_reads_host_addresses_only():
    root = dx.parse_domain(DOMAIN)
    assert [bdf for _e, bdf in dx.pci_hostdevs(root)] == ["0000:31:00.1", "0000:41:00.0"]


def test_fragments_accept_several_and_refuse_other_elements():
    wanted = dx.parse_hostdev_fragments(hostdev("31") + "\n" + hostdev("76")).hostdevs
    assert [bdf for _e, bdf in wanted] == ["0000:31:00.1", "0000:76:00.1"]
    assert dx.parse_hostdev_fragments("  ") == ([], [])
    with pytest.raises(dx.DomainXMLError, match="holds <disk>, .*only KAE VF hostdevs"):
        dx.parse_hostdev_fragments("<disk/>")
    with pytest.raises(dx.DomainXMLError, match="names 0000:31:00.1 twice"):
        dx.parse_hostdev_fragments(hostdev("31") + hostdev("31"))
    with pytest.raises(dx.DomainXMLError, match="not well-formed"):
        dx.parse_hostdev_fragments("<hostdev>")


def test_foreign_passthrough_names_non_kae_devices():
    extra = ("<interface type='hostdev'><source><address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x1'/>"
             "</source></interface><hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/></source></hostdev></devices>")
    root = dx.parse_domain(DOMAIN.replace("</devices>", extra))
    described = [dx.describe_element(elem) for elem in dx.foreign_passthrough(root, is_kae)]
    assert described == [
        "<hostdev managed='yes' mode='subsystem' type='pci'> (host PCI 0000:41:00.0)",
        "<interface type='hostdev'> (host PCI 0000:05:00.1)",
        "<hostdev mode='subsystem' type='usb'>",
    ]


def test_set_kae_hostdevs_adds_removes_and_merges_keeping_libvirt_additions():
    root = dx.parse_domain(DOMAIN)
    summary = dx.set_kae_hostdevs(root, dx.parse_hostdev_fragments(hostdev("31") + hostdev("76")).hostdevs, is_kae)
    assert summary == {"added": ["0000:76:00.1"], "removed": [], "updated": ["0000:31:00.1"]}
    by_bdf = dict((bdf, elem) for elem, bdf in dx.pci_hostdevs(root))
    merged = by_bdf["0000:31:00.1"]
    assert merged.get("managed") == "no" and merged.get("migration") == "on"
    assert merged.find("alias").get("name") == "hostdev0" and merged.find("address").get("bus") == "0x07"
    assert "0000:41:00.0" in by_bdf, "a hostdev that is not a KAE VF is not the KAE set's to remove"
    # The same request again changes nothing.
    assert dx.set_kae_hostdevs(root, dx.parse_hostdev_fragments(hostdev("31") + hostdev("76")).hostdevs, is_kae) == {
        "added": [], "removed": [], "updated": []}
    # An empty set removes the KAE ones only.
    assert dx.set_kae_hostdevs(root, [], is_kae)["removed"] == ["0000:31:00.1", "0000:76:00.1"]
    assert [bdf for _e, bdf in dx.pci_hostdevs(root)] == ["0000:41:00.0"]


def test_new_hostdev_is_placed_after_existing_hostdevs():
    root = dx.parse_domain(DOMAIN)
    dx.set_kae_hostdevs(root, dx.parse_hostdev_fragments(hostdev("31") + hostdev("76")).hostdevs, is_kae)
    tags = [child.tag for child in root.find("devices")]
    assert tags == ["disk", "hostdev", "hostdev", "hostdev"]


def test_trace_args_keep_other_arguments_and_replace_managed_ones():
    root = dx.parse_domain(DOMAIN)
    summary = dx.set_trace_args(root, ["all_vcpus*"], MANAGED)
    assert summary == {"added": ["all_vcpus*"], "removed": ["vm_state_notify"]}
    assert commandline_values(root) == ["-s", "--trace", "migrate_set_state", "--trace", "all_vcpus*"]
    assert dx.set_trace_args(root, ["all_vcpus*"], MANAGED) == {"added": [], "removed": []}


def test_trace_args_declare_namespace_when_missing_and_drop_empty_commandline():
    root = dx.parse_domain("<domain type='kvm'><name>vm</name><devices/></domain>")
    dx.set_trace_args(root, ["all_vcpus*", "vm_state_notify"], MANAGED)
    text = dx.to_string(root)
    assert 'xmlns:qemu="%s"' % dx.QEMU_NS in text and "<qemu:arg value=\"all_vcpus*\" />" in text
    assert dx.trace_patterns(dx.parse_domain(text)) == ["all_vcpus*", "vm_state_notify"]
    assert dx.set_trace_args(root, [], MANAGED)["removed"] == ["all_vcpus*", "vm_state_notify"]
    assert root.find(QEMU + "commandline") is None


def test_trace_args_remove_duplicates_of_a_wanted_pattern():
    root = dx.parse_domain("<domain xmlns:qemu='%s'><qemu:commandline><qemu:arg value='-trace'/><qemu:arg value='vm_state_notify'/>"
                           "<qemu:arg value='--trace'/><qemu:arg value='vm_state_notify'/></qemu:commandline></domain>" % dx.QEMU_NS)
    assert dx.set_trace_args(root, ["vm_state_notify"], MANAGED) == {"added": [], "removed": ["vm_state_notify"]}
    assert commandline_values(root) == ["-trace", "vm_state_notify"]


def test_cpuset_round_trip():
    assert dx.parse_cpuset("0-3,8, 10-11") == [0, 1, 2, 3, 8, 10, 11]
    assert dx.format_cpuset([11, 0, 1, 2, 3, 8, 10]) == "0-3,8,10-11"


CAPS = """<capabilities><host><topology><cells num='2'>
<cell id='0'><cpus num='2'><cpu id='0'/><cpu id='1'/></cpus></cell>
<cell id='1'><cpus num='3'><cpu id='4'/><cpu id='5'/><cpu id='6'/></cpus></cell>
</cells></topology></host></capabilities>"""


def test_node_cpus_and_unknown_node():
    assert dx.node_cpus(CAPS, 1) == [4, 5, 6]
    with pytest.raises(dx.DomainXMLError, match=r"NUMA node 3 does not exist on this host \(nodes: 0, 1\)"):
        dx.node_cpus(CAPS, 3)


def test_placement_numatune_then_cputune_is_idempotent():
    root = dx.parse_domain(DOMAIN)
    assert dx.set_placement(root, "numatune", 1) == ["numatune"]
    assert root.find("numatune/memory").attrib == {"mode": "strict", "nodeset": "1"}
    assert dx.pinned_node(root) == 1
    assert dx.set_placement(root, "cputune", 1, [4, 5, 6]) == ["cputune"]
    pins = [(pin.get("vcpu"), pin.get("cpuset")) for pin in root.findall("cputune/vcpupin")]
    assert pins == [(str(i), "4-6") for i in range(4)]
    assert root.find("cputune/emulatorpin").get("cpuset") == "4-6"
    assert dx.set_placement(root, "cputune", 1, [4, 5, 6]) == []
    # libvirt's element order: tuning before <os> and <devices>.
    tags = [child.tag for child in root]
    assert tags.index("cputune") < tags.index("numatune") < tags.index("os")


def test_placement_vcpu_sets_cpuset_and_keeps_count():
    root = dx.parse_domain(DOMAIN)
    assert dx.set_placement(root, "vcpu", 0, [0, 1]) == ["numatune", "vcpu"]
    assert root.find("vcpu").attrib == {"placement": "static", "cpuset": "0-1"} and root.find("vcpu").text == "4"
    assert dx.set_placement(root, "none", 5) == []


def test_pinned_node_none_for_several_nodes():
    root = dx.parse_domain("<domain><numatune><memory mode='strict' nodeset='0-1'/></numatune></domain>")
    assert dx.pinned_node(root) is None


def test_remap_rewrites_only_mapped_sources():
    root = dx.parse_domain(DOMAIN)
    dx.remap_hostdev_addresses(root, {"0000:31:00.1": "0000:b5:00.3"})
    assert [bdf for _e, bdf in dx.pci_hostdevs(root)] == ["0000:b5:00.3", "0000:41:00.0"]
    address = root.find("devices/hostdev/source/address")
    assert address.attrib == {"domain": "0x0000", "bus": "0xb5", "slot": "0x00", "function": "0x3"}


def test_same_xml_ignores_formatting_only():
    one = "<domain type='kvm'><name>a</name></domain>"
    assert dx.same_xml(one, '<domain   type="kvm">\n  <name>a</name>\n</domain>')
    assert not dx.same_xml(one, "<domain type='kvm'><name>b</name></domain>")
    assert ET.fromstring(dx.to_string(dx.parse_domain(DOMAIN))).find("name").text == "vm1"


def test_hostdev_without_managed_or_with_short_address_spelling_converges():
    root = dx.parse_domain(DOMAIN)
    short = ("<hostdev mode='subsystem' type='pci'><driver name='vfio'/><source>"
             "<address domain='0x0' bus='0x76' slot='0x0' function='0x1'/></source></hostdev>")
    assert dx.set_kae_hostdevs(root, dx.parse_hostdev_fragments(short).hostdevs, is_kae)["added"] == ["0000:76:00.1"]
    added = dict((bdf, elem) for elem, bdf in dx.pci_hostdevs(root))["0000:76:00.1"]
    assert added.get("managed") == "no", "libvirt's default is stated, as libvirt writes it back"
    # libvirt writes the address back in its own spelling: still the same device, nothing to change.
    added.find("source/address").attrib.update({"domain": "0x0000", "slot": "0x00"})
    summary = dx.set_kae_hostdevs(root, dx.parse_hostdev_fragments(short).hostdevs, is_kae)
    assert summary["updated"] == [] and summary["added"] == []


def aliased(bus, alias):
    return hostdev(bus, extra="").replace("</source>", "</source><alias name='%s'/>" % alias)


def override(*aliases, prop="<qemu:property name='enable-migration' type='bool' value='true'/>"):
    return ("<qemu:override xmlns:qemu='%s'>%s</qemu:override>"
            % (dx.QEMU_NS, "".join("<qemu:device alias='%s'><qemu:frontend>%s</qemu:frontend></qemu:device>" % (a, prop)
                                   for a in aliases)))


def test_fragments_read_the_override_of_their_own_aliases():
    fragment = dx.parse_hostdev_fragments(aliased("31", "ua-kae-zip-0") + aliased("76", "ua-kae-sec-0")
                                          + override("ua-kae-zip-0", "ua-kae-sec-0"))
    assert [bdf for _e, bdf in fragment.hostdevs] == ["0000:31:00.1", "0000:76:00.1"]
    assert [device.get("alias") for device in fragment.overrides] == ["ua-kae-zip-0", "ua-kae-sec-0"]


@pytest.mark.parametrize("text, message", [
    (aliased("31", "ua-kae-zip-0") + override("ua-kae-sec-0"), r"<qemu:device alias='ua-kae-sec-0'>; it may only hold .* \(ua-kae-zip-0\)"),
    (aliased("31", "ua-kae-zip-0") + override("ua-kae-zip-0", prop="<qemu:arg value='-x'/>"),
     "entry of ua-kae-zip-0 holds <qemu:frontend>; only <qemu:frontend> with <qemu:property"),
    (aliased("31", "ua-kae-zip-0") + override("ua-kae-zip-0", "ua-kae-zip-0"), "names alias ua-kae-zip-0 twice"),
    (aliased("31", "ua-kae-zip-0") + override("ua-kae-zip-0") + override("ua-kae-zip-0"), "holds 2 <qemu:override> elements"),
    (aliased("31", "hostdev0"), "the alias 'hostdev0'; a KAE hostdev's alias must be a user alias ua-kae-"),
    (aliased("31", "ua-kae-zip-0") + aliased("76", "ua-kae-zip-0"), "gives the alias ua-kae-zip-0 to two hostdevs"),
    (hostdev("31") + "<qemu:commandline xmlns:qemu='%s'/>" % dx.QEMU_NS, "holds <{%s}commandline>" % dx.QEMU_NS),
])
def test_fragments_refuse_overrides_that_are_not_their_own(text, message):
    with pytest.raises(dx.DomainXMLError, match=message):
        dx.parse_hostdev_fragments(text)


def test_kae_overrides_are_set_exactly_and_other_entries_kept():
    root = dx.parse_domain(DOMAIN.replace("</domain>", override("ua-disk0", prop="<qemu:property name='x' type='remove'/>")
                                          + "</domain>"))
    fragment = dx.parse_hostdev_fragments(aliased("31", "ua-kae-zip-0") + aliased("76", "ua-kae-sec-0")
                                          + override("ua-kae-zip-0", "ua-kae-sec-0"))
    assert dx.set_kae_overrides(root, fragment.overrides) == {"added": ["ua-kae-zip-0", "ua-kae-sec-0"], "removed": [], "updated": []}
    assert dx.kae_override_aliases(root) == ["ua-kae-zip-0", "ua-kae-sec-0"]
    assert dx.set_kae_overrides(root, fragment.overrides) == {"added": [], "removed": [], "updated": []}
    # Text and XML round trip (what libvirt hands back) changes nothing either.
    again = dx.parse_domain(dx.to_string(root))
    assert dx.set_kae_overrides(again, fragment.overrides) == {"added": [], "removed": [], "updated": []}
    changed = dx.parse_hostdev_fragments(aliased("31", "ua-kae-zip-0") + override(
        "ua-kae-zip-0", prop="<qemu:property name='enable-migration' type='bool' value='false'/>"))
    assert dx.set_kae_overrides(root, changed.overrides) == {"added": [], "removed": ["ua-kae-sec-0"], "updated": ["ua-kae-zip-0"]}
    # Another variant: every KAE entry goes, the entry of another device stays.
    assert dx.set_kae_overrides(root, [])["removed"] == ["ua-kae-zip-0"]
    assert [d.get("alias") for d in root.findall(dx.QEMU_OVERRIDE + "/" + dx.QEMU_DEVICE)] == ["ua-disk0"]


def test_an_override_left_empty_is_removed_and_commandline_stays_before_it():
    root = dx.parse_domain("<domain type='kvm'><name>vm</name><devices/></domain>")
    dx.set_kae_overrides(root, dx.parse_hostdev_fragments(aliased("31", "ua-kae-zip-0") + override("ua-kae-zip-0")).overrides)
    dx.set_trace_args(root, ["vm_state_notify"], MANAGED)
    assert [child.tag for child in root][-2:] == [QEMU + "commandline", QEMU + "override"], "libvirt's order"
    dx.set_kae_overrides(root, [])
    assert root.find(dx.QEMU_OVERRIDE) is None


def test_merge_drops_a_kae_alias_the_other_variant_does_not_have():
    root = dx.parse_domain(DOMAIN)
    upstream = dx.parse_hostdev_fragments(hostdev("31") + aliased("76", "ua-kae-sec-0")).hostdevs
    dx.set_kae_hostdevs(root, upstream, is_kae)
    openeuler = dx.parse_hostdev_fragments(hostdev("31") + hostdev("76")).hostdevs
    assert dx.set_kae_hostdevs(root, openeuler, is_kae)["updated"] == ["0000:76:00.1"]
    by_bdf = dict((bdf, e) for e, bdf in dx.pci_hostdevs(root))
    assert by_bdf["0000:76:00.1"].find("alias") is None
    # libvirt's own alias (of a running guest's XML) is not the collection's to drop.
    assert by_bdf["0000:31:00.1"].find("alias").get("name") == "hostdev0"
