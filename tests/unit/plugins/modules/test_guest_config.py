# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""guest_config against libvirt's test driver: a private test:///FILE node per test, real defineXML/XMLDesc."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

libvirt = pytest.importorskip("libvirt")

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx  # noqa: E402
from ansible_collections.openeuler.kae.plugins.modules import guest_config  # noqa: E402

KAE_VFS = {"0000:31:00.1", "0000:76:00.1", "0000:79:00.1", "0000:b5:00.1"}

NODE = """<node>
  <domain type='test'>
    <name>vm1</name>
    <memory unit='KiB'>1048576</memory>
    <vcpu placement='static'>2</vcpu>
    <os><type arch='i686'>hvm</type></os>
    <devices>
      <disk type='file' device='disk'><source file='/guest/vm1.img'/><target dev='vda' bus='virtio'/></disk>
      %s
    </devices>
  </domain>
</node>
"""


def hostdevs(*buses, migration=False):
    return "".join(
        "<hostdev mode='subsystem' type='pci' managed='no'%s><driver name='vfio'/><source>"
        "<address domain='0x0000' bus='0x%s' slot='0x00' function='0x1'/></source></hostdev>"
        % (" migration='on'" if migration else "", bus) for bus in buses)


@pytest.fixture
def node(tmp_path):
    """Write a test-driver node file; returns a function (extra devices XML) -> URI."""
    def make(extra=""):
        path = tmp_path / "node.xml"
        path.write_text(NODE % extra)
        return "test://%s" % path
    return make


def params(uri, **overrides):
    base = dict(name="vm1", uri=uri, hostdev_xml=None, sysfs_root="/sys", trace_profile=None, placement="none",
                numa_node=None, remove_foreign_passthrough=False, restart=False, restart_timeout_s=0,
                skip_missing=False)
    base.update(overrides)
    return base


def run(args, check_mode=False):
    return guest_config.run(args, check_mode, is_kae=lambda bdf: bdf in KAE_VFS)


def after_root(result):
    return dx.parse_domain(result["diff"]["after"])


def test_adds_hostdevs_then_is_idempotent(node):
    uri = node()
    first = run(params(uri, hostdev_xml=hostdevs("31", "76")))
    assert first["changed"] is True
    assert first["hostdevs"] == {"added": ["0000:31:00.1", "0000:76:00.1"], "removed": [], "updated": []}
    assert [bdf for _e, bdf in dx.pci_hostdevs(after_root(first))] == ["0000:31:00.1", "0000:76:00.1"]
    assert "<hostdev" not in first["diff"]["before"]


def test_second_run_on_the_same_connection_state_is_unchanged(tmp_path):
    # The test driver's default node keeps state for the life of the process, so two runs see each other.
    uri = "test:///default"
    conn = libvirt.open(uri)
    xml = conn.lookupByName("test").XMLDesc(0)
    try:
        args = params(uri, name="test", hostdev_xml=hostdevs("31", "79"), placement="numatune", numa_node=1)
        first = run(args)
        second = run(args)
        assert first["changed"] is True and first["placement"] == ["numatune"]
        assert second["changed"] is False and second["hostdevs"] == {"added": [], "removed": [], "updated": []}
        assert second["msg"] == "test: definition already as requested"
        assert first["restart_required"] is True, "the default test domain runs: the change waits for a restart"
        assert second["restart_required"] is False
        defined = dx.parse_domain(conn.lookupByName("test").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert [bdf for _e, bdf in dx.pci_hostdevs(defined)] == ["0000:31:00.1", "0000:79:00.1"]
        assert defined.find("numatune/memory").get("nodeset") == "1"
    finally:
        conn.defineXML(xml)
        conn.close()


def test_check_mode_predicts_and_changes_nothing():
    uri = "test:///default"
    conn = libvirt.open(uri)
    before = conn.lookupByName("test").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    try:
        result = run(params(uri, name="test", hostdev_xml=hostdevs("31")), check_mode=True)
        assert result["changed"] is True and result["hostdevs"]["added"] == ["0000:31:00.1"]
        assert "0x31" in result["diff"]["after"] and "0x31" not in result["diff"]["before"]
        assert conn.lookupByName("test").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before
    finally:
        conn.close()


def test_replaces_and_removes_kae_hostdevs(node):
    uri = node(hostdevs("31", "76"))
    result = run(params(uri, hostdev_xml=hostdevs("76", "b5")))
    assert result["hostdevs"] == {"added": ["0000:b5:00.1"], "removed": ["0000:31:00.1"], "updated": []}
    result = run(params(uri, hostdev_xml=""))
    assert result["hostdevs"]["removed"] == ["0000:31:00.1", "0000:76:00.1"]
    assert dx.pci_hostdevs(after_root(result)) == []


def test_refuses_foreign_passthrough_naming_it_and_changes_nothing(node):
    uri = node(hostdevs("31") + hostdevs("41"))
    with pytest.raises(guest_config.GuestConfigError) as info:
        run(params(uri, hostdev_xml=hostdevs("31")))
    message = str(info.value)
    assert "domain vm1 holds passthrough devices that are not KAE VFs" in message
    assert "host PCI 0000:41:00.1" in message and "remove_foreign_passthrough=true" in message


def test_removes_foreign_passthrough_when_told(node):
    uri = node(hostdevs("31") + hostdevs("41"))
    result = run(params(uri, hostdev_xml=hostdevs("31"), remove_foreign_passthrough=True))
    assert result["removed_foreign_passthrough"] == ["<hostdev managed='no' mode='subsystem' type='pci'> (host PCI 0000:41:00.1)"]
    assert [bdf for _e, bdf in dx.pci_hostdevs(after_root(result))] == ["0000:31:00.1"]


def test_requested_device_is_not_foreign_even_if_unknown_to_sysfs(node):
    # The caller asked for this address: it is not refused as a foreign device.
    uri = node(hostdevs("41"))
    result = run(params(uri, hostdev_xml=hostdevs("41")))
    assert result["changed"] is False


def test_libvirt_dropping_migration_attribute_is_reported(node):
    uri = node()
    result = run(params(uri, hostdev_xml=hostdevs("31", migration=True)))
    assert result["changed"] is True
    assert any("did not keep all attributes of hostdevs 0000:31:00.1" in w and "guest_hostdev_migration_attr: false" in w
               for w in result["warnings"])


def test_trace_arguments_are_predicted_and_dropped_by_the_test_driver(node):
    # Only libvirt's QEMU driver keeps <qemu:commandline>: check mode shows the prediction, a real run warns.
    uri = node()
    predicted = run(params(uri, trace_profile="both"), check_mode=True)
    assert predicted["trace"] == {"added": ["all_vcpus*", "vm_state_notify"], "removed": [],
                                  "patterns": ["all_vcpus*", "vm_state_notify"]}
    assert dx.trace_patterns(after_root(predicted)) == ["all_vcpus*", "vm_state_notify"]
    applied = run(params(uri, trace_profile="openeuler"))
    assert any("did not keep the <qemu:commandline> trace arguments (all_vcpus*)" in w for w in applied["warnings"])


def test_cputune_uses_the_host_topology():
    # The default test node reports a two-cell topology; check mode leaves it untouched.
    uri = "test:///default"
    result = run(params(uri, name="test", placement="cputune", numa_node=1), check_mode=True)
    root = after_root(result)
    cpus = ET.fromstring(libvirt.open(uri).getCapabilities()).findall("host/topology/cells/cell[@id='1']/cpus/cpu")
    expected = dx.format_cpuset(int(cpu.get("id")) for cpu in cpus)
    assert [pin.get("cpuset") for pin in root.findall("cputune/vcpupin")] == [expected, expected]
    assert result["placement"] == ["numatune", "cputune"]


def test_unknown_numa_node_and_unknown_domain_are_refused(node):
    uri = node()
    with pytest.raises(dx.DomainXMLError, match="NUMA node 7 does not exist on this host"):
        run(params(uri, placement="vcpu", numa_node=7))
    with pytest.raises(guest_config.GuestConfigError, match="domain nosuch is not defined on test://.*define it first"):
        run(params(uri, name="nosuch"))


def test_restart_applies_the_change_to_a_running_guest():
    uri = "test:///default"
    conn = libvirt.open(uri)
    xml = conn.lookupByName("test").XMLDesc(0)
    try:
        domain = conn.lookupByName("test")
        assert domain.isActive()
        result = run(params(uri, name="test", hostdev_xml=hostdevs("31"), restart=True))
        assert result["restarted"] is True and result["restart_required"] is False
        assert "definition updated and guest restarted" in result["msg"]
        live = dx.parse_domain(conn.lookupByName("test").XMLDesc(0))
        assert [bdf for _e, bdf in dx.pci_hostdevs(live)] == ["0000:31:00.1"], "the running guest has the new device"
    finally:
        conn.lookupByName("test").destroy()
        conn.defineXML(xml)
        conn.lookupByName("test").create()
        conn.close()


def test_wanted_patterns_follow_the_trace_profiles():
    assert guest_config.wanted_patterns("none") == []
    assert guest_config.wanted_patterns("both") == ["all_vcpus*", "vm_state_notify"]
    assert guest_config.wanted_patterns("downtime_checkpoint") == ["vmstate_downtime_checkpoint"]


# Through main(), with the sysfs tree of a simulated Kunpeng 920 host telling KAE VFs from other devices.

@pytest.fixture
def sysfs_tree(tmp_path):
    from ansible_collections.openeuler.kae.lab import simsysfs  # pylint: disable=import-outside-toplevel
    root = str(tmp_path / "sysfs")
    pfs = simsysfs.build(root, vfs=2)
    return root, pfs


@pytest.fixture
def default_domain():
    """test:///default's running domain 'test', restored after the test (the open connection keeps the node alive)."""
    conn = libvirt.open("test:///default")
    original = conn.lookupByName("test").XMLDesc(0)
    yield conn
    conn.defineXML(original)
    conn.close()


def test_main_refuses_a_non_kae_hostdev_named_by_sysfs(fail_module, sysfs_tree, default_domain):
    root, pfs = sysfs_tree
    zip_vf = pfs[("zip", 0)][:-1] + "1"
    xml = default_domain.lookupByName("test").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    default_domain.defineXML(xml.replace("<devices>", "<devices>" + hostdevs(zip_vf.split(":")[1], "41")))
    before = default_domain.lookupByName("test").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    result = fail_module(guest_config, {"name": "test", "uri": "test:///default", "sysfs_root": root,
                                        "hostdev_xml": hostdevs(zip_vf.split(":")[1])})
    assert "not KAE VFs: <hostdev managed='no' mode='subsystem' type='pci'> (host PCI 0000:41:00.1)" in result["msg"]
    assert zip_vf not in result["msg"], "the simulated ZIP VF is recognised as a KAE VF"
    assert default_domain.lookupByName("test").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before, "nothing changed"


def test_main_check_mode_diff_only_when_asked(run_module, sysfs_tree, default_domain):
    root, pfs = sysfs_tree
    bus = pfs[("sec", 0)].split(":")[1]
    args = {"name": "test", "uri": "test:///default", "sysfs_root": root, "hostdev_xml": hostdevs(bus)}
    quiet = run_module(guest_config, args, check_mode=True)
    assert quiet["changed"] is True and "diff" not in quiet and "0x%s" % bus in quiet["xml"]
    shown = run_module(guest_config, args, check_mode=True, diff=True)
    assert "0x%s" % bus in shown["diff"]["after"] and "0x%s" % bus not in shown["diff"]["before"]


def test_main_requires_a_node_for_placement(fail_module):
    result = fail_module(guest_config, {"name": "test", "uri": "test:///default", "placement": "cputune"})
    assert "placement is cputune but all of the following are missing: numa_node" in result["msg"]


def test_a_transient_guest_is_made_persistent_with_a_warning(default_domain):
    xml = default_domain.lookupByName("test").XMLDesc(0).replace("<name>test</name>", "<name>transient</name>")
    xml = _new_uuid(xml)
    domain = default_domain.createXML(xml, 0)
    try:
        assert not domain.isPersistent()
        predicted = run(params("test:///default", name="transient", hostdev_xml=hostdevs("31")), check_mode=True)
        assert predicted["changed"] is True and predicted["warnings"] == []
        assert not default_domain.lookupByName("transient").isPersistent()
        result = run(params("test:///default", name="transient", hostdev_xml=hostdevs("31")))
        assert result["changed"] is True and default_domain.lookupByName("transient").isPersistent()
        assert any("domain transient was transient" in w for w in result["warnings"])
    finally:
        default_domain.lookupByName("transient").destroy()
        default_domain.lookupByName("transient").undefine()


def _new_uuid(xml):
    root = ET.fromstring(xml)
    root.find("uuid").text = "4d1c5e2a-3b6f-4c1e-9a7d-2f0b8e6c1a90"
    return ET.tostring(root, encoding="unicode")


def test_skip_missing_reports_an_absent_domain_without_failing(node):
    result = run(params(node(), name="elsewhere", skip_missing=True, trace_profile="both"))
    assert result["changed"] is False and result["defined"] is False and "skipped (skip_missing)" in result["msg"]
