# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""hostdev_remap against libvirt's test driver: the running default domain given two KAE VFs."""

from __future__ import annotations

import pytest

libvirt = pytest.importorskip("libvirt")

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx  # noqa: E402
from ansible_collections.openeuler.kae.plugins.module_utils._remap import RemapError  # noqa: E402
from ansible_collections.openeuler.kae.plugins.modules import hostdev_remap  # noqa: E402

URI = "test:///default"
HOSTDEVS = "".join(
    "<hostdev mode='subsystem' type='pci' managed='no'><driver name='vfio'/><source>"
    "<address domain='0x0000' bus='0x%s' slot='0x00' function='0x1'/></source></hostdev>" % bus for bus in ("31", "76"))


def vf(bdf, engine, node=0, domain=None):
    return {"bdf": bdf, "engine": engine, "function": "vf", "numa_node": node, "driver": "hisi_acc_vfio_pci",
            "migratable_hw": True, "domain": domain, "domains": [domain] if domain else [], "owner_known": True,
            "queue_class": {"pf_q_num": 64, "num_vfs": 4, "last": False}}


SRC = [vf("0000:31:00.1", "zip", domain="test"), vf("0000:76:00.1", "sec", domain="test")]


@pytest.fixture
def running_guest():
    """The test driver's running domain 'test', restarted with two KAE hostdevs; restored afterwards."""
    conn = libvirt.open(URI)
    original = conn.lookupByName("test").XMLDesc(0)
    conn.defineXML(original.replace("<devices>", "<devices>" + HOSTDEVS))
    domain = conn.lookupByName("test")
    domain.destroy()
    domain.create()
    yield conn
    conn.lookupByName("test").destroy()
    conn.defineXML(original)
    conn.lookupByName("test").create()
    conn.close()


def test_remaps_live_and_persistent_xml(running_guest):
    dst = [vf("0000:31:00.1", "zip", domain="other"), vf("0000:31:00.2", "zip"), vf("0000:76:00.1", "sec")]
    result = hostdev_remap.run({"domain": "test", "domain_xml": None, "uri": URI, "source_devices": SRC, "destination_devices": dst})
    assert result["remapped"] is True and result["numa_node"] == 0
    assert result["mapping"] == {"0000:31:00.1": "0000:31:00.2", "0000:76:00.1": "0000:76:00.1"}
    for key in ("destination_xml", "persistent_xml"):
        root = dx.parse_domain(result[key])
        assert root.findtext("name") == "test"
        assert [bdf for _e, bdf in dx.pci_hostdevs(root)] == ["0000:31:00.2", "0000:76:00.1"]
    # Nothing changed on the source.
    live = dx.parse_domain(running_guest.lookupByName("test").XMLDesc(0))
    assert [bdf for _e, bdf in dx.pci_hostdevs(live)] == ["0000:31:00.1", "0000:76:00.1"]


def test_free_addresses_need_no_destination_xml(running_guest):
    dst = [vf("0000:31:00.1", "zip"), vf("0000:76:00.1", "sec")]
    result = hostdev_remap.run({"domain": "test", "domain_xml": None, "uri": URI, "source_devices": SRC, "destination_devices": dst})
    assert result["remapped"] is False and result["destination_xml"] is None and result["persistent_xml"] is None


def test_refuses_a_destination_without_a_free_sec_vf(running_guest):
    dst = [vf("0000:31:00.1", "zip"), vf("0000:76:00.1", "sec", domain="other")]
    with pytest.raises(RemapError, match=r"cannot host guest test: it needs 1 sec, 1 zip free VFs on one NUMA node .*node 0 lacks sec"):
        hostdev_remap.run({"domain": "test", "domain_xml": None, "uri": URI, "source_devices": SRC, "destination_devices": dst})


def test_refuses_a_guest_that_does_not_run_here():
    with pytest.raises(RemapError, match="domain absent is not running on test:///default"):
        hostdev_remap.run({"domain": "absent", "domain_xml": None, "uri": URI, "source_devices": SRC, "destination_devices": []})


def test_main_remaps_a_given_xml_without_libvirt(run_module):
    xml = "<domain type='kvm'><name>vm1</name><devices>%s</devices></domain>" % HOSTDEVS
    dst = [vf("0000:31:00.2", "zip"), vf("0000:76:00.1", "sec")]
    src = [dict(device, domain="vm1") for device in SRC]
    result = run_module(hostdev_remap, {"domain_xml": xml, "source_devices": src, "destination_devices": dst})
    assert result["changed"] is False and result["mapping"]["0000:31:00.1"] == "0000:31:00.2"
    assert result["persistent_xml"] is None
    assert [bdf for _e, bdf in dx.pci_hostdevs(dx.parse_domain(result["destination_xml"]))] == ["0000:31:00.2", "0000:76:00.1"]


def test_main_gives_only_the_allowed_vfs(run_module):
    xml = "<domain type='kvm'><name>vm1</name><devices>%s</devices></domain>" % HOSTDEVS
    dst = [vf("0000:31:00.1", "zip"), vf("0000:31:00.2", "zip"), vf("0000:76:00.1", "sec")]
    src = [dict(device, domain="vm1") for device in SRC]
    args = {"domain_xml": xml, "source_devices": src, "destination_devices": dst}
    assert run_module(hostdev_remap, args)["mapping"]["0000:31:00.1"] == "0000:31:00.1"
    allowed = run_module(hostdev_remap, dict(args, allowed_vfs=["0000:31:00.2", "0000:76:00.1"]))
    assert allowed["mapping"] == {"0000:31:00.1": "0000:31:00.2", "0000:76:00.1": "0000:76:00.1"}


def test_main_refusal_is_a_failure_with_the_reason(fail_module):
    xml = "<domain type='kvm'><name>vm1</name><devices>%s</devices></domain>" % HOSTDEVS
    result = fail_module(hostdev_remap, {"domain_xml": xml, "source_devices": SRC, "destination_devices": [vf("0000:31:00.1", "zip")]})
    assert result["msg"].startswith("the destination cannot host guest vm1: it needs 1 sec, 1 zip free VFs")
    assert "node 0 lacks sec (0 free of 1 wanted)" in result["msg"]


def test_main_needs_a_domain(fail_module):
    result = fail_module(hostdev_remap, {"source_devices": [], "destination_devices": []})
    assert "one of the following is required: domain, domain_xml" in result["msg"]


XML = "<domain type='kvm'><name>vm1</name><devices>%s</devices></domain>" % HOSTDEVS
DST = [vf("0000:31:00.2", "zip"), vf("0000:76:00.1", "sec")]


def test_main_refuses_a_destination_whose_vf_owners_are_unknown(fail_module, run_module, kae_host, unreachable_uri):
    from ansible_collections.openeuler.kae.plugins.modules import device_info

    facts = run_module(device_info, {"sysfs_root": kae_host(vfs=2), "uri": unreachable_uri})
    xml = XML.replace("bus='0x31'", "bus='0x75'")
    src = [vf("0000:75:00.1", "zip", domain="vm1"), vf("0000:76:00.1", "sec", domain="vm1")]
    result = fail_module(hostdev_remap, {"domain_xml": xml, "source_devices": src, "destination_devices": facts["devices"]})
    assert result["msg"].startswith("on the destination, VF ownership could not be read (cannot connect to libvirt at %s" % unreachable_uri)
    assert "refusing to choose the destination's VFs for guest vm1" in result["msg"]


@pytest.mark.parametrize("params, message", [
    ({"domain_xml": None, "domain": "../vm1"}, "domain must be a libvirt domain name (no '/', no leading '.', no control characters), "
                                               "but '../vm1' contains '/'"),
    ({"domain_xml": None, "domain": "vm\x00"}, "domain must not contain a NUL byte"),
    ({"domain_xml": "<domain>\x00</domain>"}, "domain_xml must not contain a NUL byte"),
    ({"uri": "test:///default\x00"}, "uri (a libvirt connection URI such as qemu:///system) must not contain a NUL byte"),
    ({"domain_xml": "<domain"}, "the domain XML is not well-formed XML"),
    ({"destination_devices": [dict(DST[0], numa_node="0")]}, "destination_devices: destination_devices[0].numa_node must be a whole number, got str '0'"),
    ({"destination_devices": [dict(DST[0], numa_node=float("inf"))]},
     "destination_devices: destination_devices[0].numa_node must be a whole number, got float inf"),
    ({"destination_devices": [{"bdf": "0000:31:00.2"}]}, "destination_devices: destination_devices[0] lacks 'engine', 'function', 'numa_node'"),
    ({"source_devices": [dict(SRC[0], bdf="0000:31:00.1\x00")]}, "source_devices: source_devices[0].bdf must not contain a NUL byte"),
    ({"source_devices": [dict(SRC[0], engine="aes")]}, "source_devices: source_devices[0].engine must be one of zip, sec, hpre, got str 'aes'"),
    ({"allowed_vfs": ["0000:31:00.2", "31:00.2"]}, "allowed_vfs[1] must be a PCI address DDDD:BB:SS.F"),
])
def test_main_bad_input_is_a_sentence(fail_module, params, message):
    args = {"domain_xml": XML, "source_devices": [dict(d, domain="vm1", domains=["vm1"]) for d in SRC], "destination_devices": DST}
    args.update(params)
    args = {key: value for key, value in args.items() if value is not None}
    assert fail_module(hostdev_remap, args)["msg"].startswith(message)
