# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx
from ansible_collections.openeuler.kae.plugins.module_utils._remap import RemapError, plan, remap_xml

ENGINE_BUS = {"zip": "31", "sec": "76", "hpre": "79"}
NODE1_BUS = {"zip": "b5", "sec": "b6", "hpre": "b9"}


def vf(engine, bus, function, node, domain=None, driver="vfio-pci", migratable=True):
    return {"bdf": "0000:%s:00.%d" % (bus, function), "engine": engine, "function": "vf", "numa_node": node,
            "driver": driver, "migratable_hw": migratable, "domain": domain, "domains": [domain] if domain else [],
            "owner_known": True, "pf": "0000:%s:00.0" % bus, "vf_index": function - 1,
            "queue_class": {"pf_q_num": 64, "num_vfs": 4, "last": False}}


def host(used=(), domain="other"):
    """VFs .1 and .2 of each engine on node 0 (and node 1); USED (bdfs) are held by DOMAIN."""
    devices = []
    for node, buses in ((0, ENGINE_BUS), (1, NODE1_BUS)):
        for engine, bus in buses.items():
            for function in (1, 2):
                device = vf(engine, bus, function, node)
                if device["bdf"] in used:
                    device.update(domain=domain, domains=[domain])
                devices.append(device)
    return devices


def guest(*bdfs, numatune=None):
    hostdevs = "".join(
        "<hostdev mode='subsystem' type='pci' managed='no'><driver name='vfio'/><source>"
        "<address domain='0x0000' bus='0x%s' slot='0x%s' function='0x%s'/></source>"
        "<alias name='hostdev%d'/></hostdev>" % (b[5:7], b[8:10], b[11], i) for i, b in enumerate(bdfs))
    tune = "<numatune><memory mode='strict' nodeset='%d'/></numatune>" % numatune if numatune is not None else ""
    return "<domain type='kvm'><name>vm1</name>%s<devices><disk type='file'/>%s</devices></domain>" % (tune, hostdevs)


GUEST_VFS = ("0000:31:00.1", "0000:76:00.1", "0000:79:00.1")
SRC = host(used=GUEST_VFS, domain="vm1")


def test_free_addresses_on_destination_are_kept():
    result = plan(guest(*GUEST_VFS), SRC, host())
    assert result == {"mapping": dict((b, b) for b in GUEST_VFS), "numa_node": 0, "remapped": False}


def test_busy_addresses_are_remapped_to_free_vfs_of_the_same_engine_on_the_same_node():
    dst = host(used=("0000:31:00.1", "0000:79:00.1"))
    result = plan(guest(*GUEST_VFS), SRC, dst)
    assert result["remapped"] is True and result["numa_node"] == 0
    assert result["mapping"] == {"0000:31:00.1": "0000:31:00.2", "0000:76:00.1": "0000:76:00.1", "0000:79:00.1": "0000:79:00.2"}
    xml = remap_xml(guest(*GUEST_VFS), result["mapping"])
    root = dx.parse_domain(xml)
    assert [bdf for _e, bdf in dx.pci_hostdevs(root)] == ["0000:31:00.2", "0000:76:00.1", "0000:79:00.2"]
    assert [e.find("alias").get("name") for e, _b in dx.pci_hostdevs(root)] == ["hostdev0", "hostdev1", "hostdev2"]


def test_a_node_short_of_one_engine_moves_the_whole_set_to_another_node():
    dst = host(used=("0000:31:00.1", "0000:31:00.2"))
    result = plan(guest(*GUEST_VFS), SRC, dst)
    assert result["numa_node"] == 1
    assert sorted(result["mapping"].values()) == ["0000:b5:00.1", "0000:b6:00.1", "0000:b9:00.1"]
    assert result["mapping"]["0000:31:00.1"] == "0000:b5:00.1", "zip stays zip"


def test_vfs_held_by_this_guest_on_the_destination_count_as_free():
    dst = host(used=GUEST_VFS, domain="vm1")
    assert plan(guest(*GUEST_VFS), SRC, dst)["remapped"] is False


def test_vfs_unfit_for_migration_are_not_taken():
    overrides = {"0000:31:00.1": {"driver": "hisi_zip"}, "0000:31:00.2": {"migratable_hw": False}}
    result = plan(guest(*GUEST_VFS), SRC, _with(overrides))
    assert result["numa_node"] == 1 and result["mapping"]["0000:31:00.1"] == "0000:b5:00.1"


def _with(overrides):
    devices = host()
    for device in devices:
        device.update(overrides.get(device["bdf"], {}))
    return devices


def test_refused_when_no_node_has_a_free_vf_of_an_engine():
    dst = host(used=("0000:79:00.1", "0000:79:00.2", "0000:b9:00.1", "0000:b9:00.2"))
    with pytest.raises(RemapError) as info:
        plan(guest(*GUEST_VFS), SRC, dst)
    message = str(info.value)
    assert message.startswith("the destination cannot host guest vm1: it needs 1 hpre, 1 sec, 1 zip free VFs on one NUMA node")
    assert "node 0 lacks hpre (0 free of 1 wanted)" in message and "node 1 lacks hpre (0 free of 1 wanted)" in message
    assert "choose another destination" in message


def test_refused_when_the_pinned_node_cannot_host_the_guest():
    dst = host(used=("0000:76:00.1", "0000:76:00.2"))
    with pytest.raises(RemapError, match=r"cannot host guest vm1 on NUMA node 0, where its placement \(numatune\) pins it: "
                                         r"node 0 lacks free VFs for 1 hpre, 1 sec, 1 zip \(node 1 has them\)"):
        plan(guest(*GUEST_VFS, numatune=0), SRC, dst)


def test_pinned_guest_moves_to_its_node_when_source_addresses_sit_elsewhere():
    result = plan(guest(*GUEST_VFS, numatune=1), SRC, host())
    assert result["numa_node"] == 1 and result["remapped"] is True


def test_guest_without_vfs_and_guest_with_foreign_hostdev():
    assert plan(guest(), SRC, host()) == {"mapping": {}, "numa_node": None, "remapped": False}
    with pytest.raises(RemapError, match=r"holds PCI hostdevs 0000:41:00.0 that are not KAE VFs of the source host"):
        plan(guest("0000:41:00.0"), SRC, host())


def test_vfs_this_guest_shares_with_another_domain_are_not_its_own():
    dst = host()
    for device in dst:
        if device["bdf"] == "0000:31:00.1":
            device.update(domain="vm1", domains=["vm1", "parked"])
    result = plan(guest(*GUEST_VFS), SRC, dst)
    assert result["mapping"]["0000:31:00.1"] == "0000:31:00.2"


def test_refused_when_the_destination_could_not_say_who_holds_its_vfs():
    dst = [dict(d, owner_known=False, owner_error="cannot connect to libvirt at qemu:///system: no socket", domains=[]) for d in host()]
    with pytest.raises(RemapError) as info:
        plan(guest(*GUEST_VFS), SRC, dst)
    assert str(info.value) == ("on the destination, VF ownership could not be read (cannot connect to libvirt at qemu:///system: no socket), "
                               "so 12 VFs may belong to a guest: refusing to choose the destination's VFs for guest vm1. Make libvirt "
                               "reachable (uri) and read the devices again with openeuler.kae.device_info")
    # Even when the guest's own addresses look free there.
    with pytest.raises(RemapError, match="VF ownership could not be read"):
        plan(guest(*GUEST_VFS), SRC, [dict(d, owner_known=False) for d in host()])
    # A guest without VFs needs no choice.
    assert plan(guest(), SRC, dst)["mapping"] == {}


@pytest.mark.parametrize("src, dst, message", [
    (SRC, {"devices": []}, r"destination_devices: expected the device list of openeuler.kae.device_info \(its 'devices'\), got dict"),
    (SRC, [dict(host()[0], numa_node="0")], r"destination_devices: destination_devices\[0\].numa_node must be a whole number, got str '0'"),
    ([dict(SRC[0], bdf="0000:31:00.1; rm")], host(), r"source_devices: source_devices\[0\].bdf must be a PCI address"),
    (SRC, [{"bdf": "0000:31:00.2", "function": "vf"}], r"destination_devices: destination_devices\[0\] lacks 'engine', 'numa_node'"),
])
def test_bad_device_facts_are_named(src, dst, message):
    with pytest.raises(RemapError, match="^" + message):
        plan(guest(*GUEST_VFS), src, dst)


def test_allowed_vfs_are_the_only_ones_given():
    # Node 0 has every address free, but the plan gave this guest the node 1 VFs.
    planned = ["0000:b5:00.2", "0000:b6:00.2", "0000:b9:00.2"]
    result = plan(guest(*GUEST_VFS), SRC, host(), allowed=planned)
    assert sorted(result["mapping"].values()) == planned and result["numa_node"] == 1 and result["remapped"] is True


def test_allowed_vfs_keep_the_addresses_when_they_are_the_planned_ones():
    result = plan(guest(*GUEST_VFS), SRC, host(), allowed=list(GUEST_VFS))
    assert result == {"mapping": dict((b, b) for b in GUEST_VFS), "numa_node": 0, "remapped": False}


def test_an_allowed_vf_another_domain_took_meanwhile_is_refused():
    planned = ["0000:31:00.2", "0000:76:00.2", "0000:79:00.2"]
    with pytest.raises(RemapError, match="cannot host guest vm1"):
        plan(guest(*GUEST_VFS), SRC, host(used=("0000:31:00.2",)), allowed=planned)
