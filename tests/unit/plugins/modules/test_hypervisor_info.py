# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""hypervisor_info against libvirt's test driver: a private test:///FILE node with pinned, KAE, foreign-device and
stopped domains, test:///default as a second host, and the output handed straight to place_guests."""

from __future__ import annotations

import pytest

libvirt = pytest.importorskip("libvirt")

from ansible_collections.openeuler.kae.lab import simsysfs  # noqa: E402
from ansible_collections.openeuler.kae.plugins.filter.place_guests import FilterModule  # noqa: E402
from ansible_collections.openeuler.kae.plugins.module_utils import _libvirt  # noqa: E402
from ansible_collections.openeuler.kae.plugins.modules import hypervisor_info  # noqa: E402
from ansible_collections.openeuler.kae.plugins.modules.device_info import gather  # noqa: E402

place_guests = FilterModule().filters()["place_guests"]

ZIP0, SEC0, ZIP1, NIC = "0000:75:00.1", "0000:76:00.1", "0000:75:00.2", "0000:41:00.0"


def hostdev(bdf):
    bus, rest = bdf.split(":")[1:]
    slot, function = rest.split(".")
    return ("<hostdev mode='subsystem' type='pci' managed='no'><driver name='vfio'/><source>"
            "<address domain='0x0000' bus='0x%s' slot='0x%s' function='0x%s'/></source></hostdev>" % (bus, slot, function))


def domain(name, memory_kib, vcpus, nodeset=None, bdfs=(), running=True):
    numatune = "<numatune><memory mode='strict' nodeset='%s'/></numatune>" % nodeset if nodeset else ""
    runstate = "" if running else "<test:runstate>5</test:runstate>"
    return ("<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>%s</name>"
            "<memory unit='KiB'>%d</memory><vcpu>%d</vcpu>%s<os><type arch='i686'>hvm</type></os><devices>%s</devices>%s</domain>"
            % (name, memory_kib, vcpus, numatune, "".join(hostdev(b) for b in bdfs), runstate))


# 16 CPUs, 32 GiB; the test driver gives a node file no NUMA cells, so its free memory is 0.
NODE = ("<node><cpu><nodes>2</nodes><sockets>1</sockets><cores>4</cores><threads>2</threads><active>16</active>"
        "<mhz>2600</mhz><model>aarch64</model></cpu><memory>33554432</memory>%s</node>" % "".join((
            domain("pinned", 2097152, 4, nodeset="1"),
            domain("kae-small", 2049, 1, nodeset="0", bdfs=(ZIP0, SEC0)),
            domain("nic", 1048576, 2, nodeset="0-1", bdfs=(NIC,)),
            domain("off", 524288, 3, bdfs=(ZIP1,), running=False),
        )))


@pytest.fixture
def node_uri(tmp_path):
    path = tmp_path / "hv1.xml"
    path.write_text(NODE)
    return "test://%s" % path


@pytest.fixture
def sysfs(tmp_path):
    """Simulated Kunpeng 920 trees (2 VFs per PF) for hv1 and hv2."""
    roots = {}
    for name in ("hv1", "hv2"):
        roots[name] = str(tmp_path / name)
        simsysfs.build(roots[name], vfs=2)
    return roots


def guest(result, name):
    return next(entry for entry in result["guests"] if entry["name"] == name)


@pytest.mark.parametrize("check_mode", [False, True])
def test_running_domains_with_their_pinned_node_and_devices(node_uri, run_module, check_mode):
    result = run_module(hypervisor_info, {"uri": node_uri, "host_name": "hv1"}, check_mode=check_mode)
    assert result["changed"] is False and result["host"] == "hv1" and result["uri"] == node_uri
    assert result["guests"] == [
        {"name": "kae-small", "host": "hv1", "memory_mib": 3, "vcpus": 1, "pinned_node": 0, "vfs": [ZIP0, SEC0]},
        {"name": "nic", "host": "hv1", "memory_mib": 1024, "vcpus": 2, "pinned_node": None, "vfs": [NIC]},
        {"name": "pinned", "host": "hv1", "memory_mib": 2048, "vcpus": 4, "pinned_node": 1, "vfs": []},
    ]
    assert result["states"] == {"kae-small": "running", "nic": "running", "pinned": "running"}
    # 16 CPUs less the 4 + 1 + 2 vCPUs of the running domains; the stopped domain's 3 vCPUs use nothing.
    assert result["capacity"] == {"hv1": {"memory_mib": 0, "vcpus": 9}}
    assert result["totals"] == {"memory_mib": 32768, "cpus": 16, "free_memory_mib": 0, "vcpus_used": 7, "active_domains": 3}


def test_stopped_domains_are_listed_when_asked_and_use_no_vcpus(node_uri, run_module):
    result = run_module(hypervisor_info, {"uri": node_uri, "host_name": "hv1", "active_only": False})
    assert [entry["name"] for entry in result["guests"]] == ["kae-small", "nic", "off", "pinned"]
    assert guest(result, "off") == {"name": "off", "host": "hv1", "memory_mib": 512, "vcpus": 3, "pinned_node": None, "vfs": [ZIP1]}
    assert result["states"]["off"] == "shutoff"
    assert result["capacity"]["hv1"]["vcpus"] == 9 and result["totals"]["vcpus_used"] == 7


def test_free_memory_is_libvirts_in_whole_mib(run_module):
    conn = libvirt.open("test:///default")
    try:
        free_bytes, cpus = conn.getFreeMemory(), conn.getInfo()[2]
        running_vcpus = sum(dom.info()[3] for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
    finally:
        conn.close()
    result = run_module(hypervisor_info, {"uri": "test:///default", "host_name": "hv2"})
    assert free_bytes > 0 and result["capacity"] == {"hv2": {"memory_mib": free_bytes // (1024 * 1024), "vcpus": cpus - running_vcpus}}


def test_kae_only_keeps_the_domains_holding_a_kae_vf(node_uri, sysfs, run_module):
    devices = gather(sysfs["hv1"], node_uri)["devices"]
    result = run_module(hypervisor_info, {"uri": node_uri, "host_name": "hv1", "kae_only": True, "devices": devices, "active_only": False})
    assert [entry["name"] for entry in result["guests"]] == ["kae-small", "off"]
    assert sorted(result["states"]) == ["kae-small", "off"]
    # Free vCPUs still count the running domains kae_only leaves out.
    assert result["capacity"]["hv1"]["vcpus"] == 9


def test_kae_only_needs_devices_and_checks_them(node_uri, fail_module):
    message = fail_module(hypervisor_info, {"uri": node_uri, "host_name": "hv1", "kae_only": True})["msg"]
    assert message.startswith("kae_only needs devices")
    message = fail_module(hypervisor_info, {"uri": node_uri, "host_name": "hv1", "kae_only": True, "devices": [{"bdf": ZIP0}]})["msg"]
    assert "devices[0] lacks 'engine', 'function', 'numa_node'" in message
    message = fail_module(hypervisor_info, {"uri": node_uri, "host_name": "hv1", "devices": []})["msg"]
    assert message.startswith("devices is read only with kae_only: true")


@pytest.mark.parametrize("bad, message", [
    ({"host_name": " "}, "host_name (the host's inventory name"),
    ({"uri": "qemu"}, "uri must be a libvirt URI such as qemu:///system, got 'qemu'"),
])
def test_bad_options_are_named(node_uri, fail_module, bad, message):
    args = dict({"uri": node_uri, "host_name": "hv1"}, **bad)
    assert message in fail_module(hypervisor_info, args)["msg"]


def test_an_unreachable_libvirt_fails_naming_the_uri(unreachable_uri, fail_module):
    result = fail_module(hypervisor_info, {"uri": unreachable_uri, "host_name": "hv1"})
    assert result["msg"].startswith("cannot connect to libvirt at %s: " % unreachable_uri)
    assert "guests" not in result and "capacity" not in result


class UnreadableDomain:
    """A listed domain whose info() libvirt refuses, as when its QEMU does not answer."""

    def name(self):
        return "stuck"

    def info(self):
        raise libvirt.libvirtError("Timed out during operation: cannot acquire state change lock")


def test_a_domain_that_cannot_be_read_fails_the_whole_read(node_uri, fail_module, monkeypatch):
    real_connect = _libvirt.connect

    class Conn:
        def __init__(self, conn):
            self.conn = conn

        def __getattr__(self, name):
            return getattr(self.conn, name)

        def listAllDomains(self, flags):
            return self.conn.listAllDomains(flags) + [UnreadableDomain()]

    monkeypatch.setattr(_libvirt, "connect", lambda uri, read_only=False: Conn(real_connect(uri, read_only)))
    result = fail_module(hypervisor_info, {"uri": node_uri, "host_name": "hv1"})
    assert result["msg"] == ("cannot read domain stuck on %s: Timed out during operation: cannot acquire state change lock" % node_uri)
    assert "guests" not in result


def test_the_output_feeds_place_guests(node_uri, sysfs, run_module):
    facts = {"hv1": gather(sysfs["hv1"], node_uri), "hv2": gather(sysfs["hv2"], "test:///default")}
    source = run_module(hypervisor_info, {"uri": node_uri, "host_name": "hv1", "kae_only": True, "devices": facts["hv1"]["devices"]})
    destination = run_module(hypervisor_info, {"uri": "test:///default", "host_name": "hv2"})
    capacity = dict(source["capacity"], **destination["capacity"])
    plan = place_guests(facts, guests=source["guests"], capacity=capacity, maintenance=["hv1"])
    assert plan["unplaced"] == []
    assert plan["placements"] == [{"guest": "kae-small", "source": "hv1", "destination": "hv2", "numa_node": 0,
                                   "vfs": [ZIP0, SEC0], "mapping": {ZIP0: ZIP0, SEC0: SEC0}, "queue_classes_checked": True}]


def test_a_guest_bigger_than_the_free_memory_is_not_placed(node_uri, sysfs, run_module):
    facts = {"hv1": gather(sysfs["hv1"], node_uri), "hv2": gather(sysfs["hv2"], "test:///default")}
    source = run_module(hypervisor_info, {"uri": node_uri, "host_name": "hv1", "kae_only": True, "devices": facts["hv1"]["devices"]})
    capacity = run_module(hypervisor_info, {"uri": "test:///default", "host_name": "hv2"})["capacity"]
    big = [dict(source["guests"][0], memory_mib=capacity["hv2"]["memory_mib"] + 1)]
    plan = place_guests(facts, guests=big, capacity=capacity, maintenance=["hv1"])
    assert plan["placements"] == [] and [entry["guest"] for entry in plan["unplaced"]] == ["kae-small"]
