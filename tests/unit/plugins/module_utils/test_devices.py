# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _devices
from ansible_collections.openeuler.kae.plugins.module_utils._devices import DeviceError
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs


def by_bdf(devices):
    return {d["bdf"]: d for d in devices}


def vf(bdf, engine, node, driver="hisi_acc_vfio_pci", domain=None, migratable=True):
    return {"bdf": bdf, "engine": engine, "function": "vf", "numa_node": node, "driver": driver,
            "domain": domain, "domains": [domain] if domain else [], "owner_known": True, "migratable_hw": migratable}


# ---------------------------------------------------------------- discovery

def test_scan_reads_a_kunpeng920_tree(kae_host):
    devices = by_bdf(_devices.scan(Sysfs(kae_host(vfs=2))))
    # 3 engines x 2 nodes x (PF + 2 VFs); the Huawei root ports are not accelerators.
    assert len(devices) == 18
    assert "0000:74:00.0" not in devices
    pf = devices["0000:75:00.0"]
    assert pf == {
        "bdf": "0000:75:00.0", "engine": "zip", "function": "pf", "vendor": "0x19e5", "device": "0xa250",
        "numa_node": 0, "iommu_group": pf["iommu_group"], "driver": "hisi_zip", "revision": "0x30",
        "migratable_hw": True, "sriov_totalvfs": 63, "sriov_numvfs": 2, "vfs": ["0000:75:00.1", "0000:75:00.2"],
    }
    assert isinstance(pf["iommu_group"], int)
    assert devices["0000:75:00.2"] == {
        "bdf": "0000:75:00.2", "engine": "zip", "function": "vf", "vendor": "0x19e5", "device": "0xa251",
        "numa_node": 0, "iommu_group": devices["0000:75:00.2"]["iommu_group"], "driver": "hisi_acc_vfio_pci",
        "revision": "0x30", "migratable_hw": True, "pf": "0000:75:00.0", "domain": None,
        "vf_index": 1, "queue_class": {"pf_q_num": 64, "num_vfs": 2, "last": True},
    }
    assert {d["engine"] for d in devices.values() if d["numa_node"] == 2} == {"zip", "sec", "hpre"}
    assert devices["0000:b9:00.0"]["engine"] == "hpre" and devices["0000:b6:00.1"]["device"] == "0xa256"
    assert len({d["iommu_group"] for d in devices.values()}) == 18


def test_scan_variants_old_hardware_missing_engine_unbound_pf(kae_host):
    root = kae_host(revision="0x21", vfs=1, without=[("hpre", 2)], pf_drivers={("sec", 0): None})
    devices = by_bdf(_devices.scan(Sysfs(root)))
    assert "0000:b9:00.0" not in devices
    assert devices["0000:76:00.0"]["driver"] is None
    assert {d["revision"] for d in devices.values()} == {"0x21"}
    assert not any(d["migratable_hw"] for d in devices.values())


def test_scan_missing_numa_and_iommu_and_driver(kae_host):
    root = kae_host(vfs=1)
    ddir = os.path.realpath(os.path.join(root, "bus/pci/devices/0000:75:00.1"))
    for name in ("numa_node", "iommu_group", "driver"):
        os.unlink(os.path.join(ddir, name))
    device = _devices.read_device(Sysfs(root), "0000:75:00.1")
    assert (device["numa_node"], device["iommu_group"], device["driver"]) == (-1, None, None)


def test_device_vanishing_while_read_is_skipped(kae_host, monkeypatch):
    root = kae_host(vfs=2)
    sysfs = Sysfs(root)
    victim = os.path.realpath(os.path.join(root, "bus/pci/devices/0000:75:00.2"))
    real_link_name = Sysfs.link_name

    def link_name_then_vanish(self, rel):
        # The device is hot-removed just after its listing was taken, mid-read.
        if rel.endswith("0000:75:00.2/iommu_group") and os.path.isdir(victim):
            shutil.rmtree(victim)
        return real_link_name(self, rel)

    monkeypatch.setattr(Sysfs, "link_name", link_name_then_vanish)
    devices = by_bdf(_devices.scan(sysfs))
    assert "0000:75:00.2" not in devices and "0000:75:00.1" in devices
    # A dangling bus link (the device directory already gone) is skipped too.
    assert _devices.read_device(sysfs, "0000:75:00.2") is None


def test_scan_refuses_a_tree_that_is_not_sysfs(tmp_path):
    with pytest.raises(DeviceError, match="bus/pci/devices does not exist: .* is not a sysfs tree; point sysfs_root at /sys"):
        _devices.scan(Sysfs(str(tmp_path)))


def test_identify_and_summary(kae_host):
    assert _devices.identify("0x19E5", "0xA259") == ("hpre", "vf")
    assert _devices.identify("0x8086", "0xa250") is None
    assert _devices.identify("0x19e5", "0xa121") is None
    devices = _devices.scan(Sysfs(kae_host(vfs=2, without=[("hpre", 2)])))
    _devices.assign_domains(devices, {"0000:75:00.1": ["guest1"]})
    summary = _devices.engine_summary(devices)
    assert summary["zip"] == {"pfs": 2, "vfs": 4, "free_vfs": 3, "numa_nodes": [0, 2]}
    assert summary["hpre"] == {"pfs": 1, "vfs": 2, "free_vfs": 2, "numa_nodes": [0]}
    # Unknown is not free.
    _devices.assign_domains(devices, {}, unknown_reason="libvirt is down")
    assert {engine: counts["free_vfs"] for engine, counts in _devices.engine_summary(devices).items()} == {"zip": 0, "sec": 0, "hpre": 0}


def test_assign_domains_records_whether_the_owner_is_known(kae_host):
    devices = by_bdf(_devices.scan(Sysfs(kae_host(vfs=2))))
    _devices.assign_domains(list(devices.values()), {"0000:75:00.1": ["running", "parked"]})
    assert {k: devices["0000:75:00.1"][k] for k in ("domain", "domains", "owner_known")} == {
        "domain": "running", "domains": ["running", "parked"], "owner_known": True}
    assert {k: devices["0000:75:00.2"][k] for k in ("domain", "domains", "owner_known")} == {"domain": None, "domains": [], "owner_known": True}
    assert "owner_known" not in devices["0000:75:00.0"], "PFs carry no owner"
    _devices.assign_domains(list(devices.values()), {"0000:75:00.1": ["running"]}, unknown_reason="libvirt is down")
    assert {k: devices["0000:75:00.1"][k] for k in ("domain", "domains", "owner_known", "owner_error")} == {
        "domain": None, "domains": [], "owner_known": False, "owner_error": "libvirt is down"}


@pytest.mark.parametrize("overrides, free", [
    ({}, True),
    ({"owner_known": False}, False),
    ({"owner_known": None}, False),
    ({"domain": "g", "domains": ["g"]}, False),
    ({"domains": ["parked"]}, False),
    ({"driver": "hisi_zip"}, False),
    ({"migratable_hw": False}, False),
])
def test_is_free_needs_a_known_owner(overrides, free):
    device = dict(vf("0000:75:00.1", "zip", 0), **overrides)
    assert _devices.is_free(device) is free
    without_key = vf("0000:75:00.1", "zip", 0)
    del without_key["owner_known"]
    assert _devices.is_free(without_key) is False


def test_pf_q_num_and_migration_drivers(kae_host):
    root = kae_host(vfs=0, pf_q_num=256)
    sysfs = Sysfs(root)
    assert _devices.read_pf_q_num(sysfs) == {"zip": 256, "sec": 256, "hpre": 256}
    assert _devices.migration_drivers(sysfs) == ["hisi_acc_vfio_pci"]
    shutil.rmtree(os.path.join(root, "module/hisi_hpre/parameters"))
    assert "hpre" not in _devices.read_pf_q_num(sysfs)
    old = Sysfs(kae_host(vfs=0, migration_driver="vfio-pci"))
    assert _devices.migration_drivers(old) == ["vfio-pci"]
    shutil.rmtree(old.path("module/hisi_migration"))
    assert _devices.migration_drivers(old) == []


# ---------------------------------------------------------------- libvirt

def test_hostdev_bdfs_reads_pci_hostdevs_only():
    xml = """<domain><devices>
      <hostdev mode='subsystem' type='pci' migration='on'><driver name='vfio'/>
        <source><address bus='0x31' slot='0x00' function='0x1'/></source></hostdev>
      <hostdev mode='subsystem' type='pci'><source><address domain='0x0002' bus='0xb5' slot='0x07' function='0x7'/></source></hostdev>
      <hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/></source></hostdev>
      <hostdev mode='subsystem' type='pci'><source/></hostdev>
    </devices></domain>"""
    assert _devices.hostdev_bdfs(xml) == ["0000:31:00.1", "0002:b5:07.7"]


def test_hostdev_owners_from_libvirt(guest_uri, empty_uri, parked_uri):
    owners, note = _devices.hostdev_owners(guest_uri)
    assert owners == {"0000:75:00.2": ["guest1"]}
    # A domain that is only defined holds its VFs too; running holders come first.
    assert _devices.hostdev_owners(parked_uri)[0] == {"0000:75:00.2": ["guest1", "parked"], "0000:75:00.3": ["parked"]}
    assert note == {"available": True, "uri": guest_uri}
    assert _devices.hostdev_owners(empty_uri) == ({}, {"available": True, "uri": empty_uri})


def test_hostdev_owners_unreachable_says_why(unreachable_uri):
    owners, note = _devices.hostdev_owners(unreachable_uri)
    assert owners == {}
    assert note["available"] is False
    assert "cannot connect to libvirt at %s" % unreachable_uri in note["reason"]


def test_hostdev_owners_listing_failure(monkeypatch):
    libvirt = pytest.importorskip("libvirt")

    class ConnectionReset(libvirt.libvirtError):
        def get_error_message(self):
            return "connection reset"

    class BrokenConn:
        def listAllDomains(self, _flags):
            raise ConnectionReset("connection reset")

        def close(self):
            self.closed = True

    conn = BrokenConn()
    monkeypatch.setattr(_devices._libvirt, "connect", lambda uri, read_only: conn)
    owners, note = _devices.hostdev_owners("qemu:///system")
    assert owners == {} and conn.closed
    assert note == {"available": False, "uri": "qemu:///system",
                    "reason": "cannot read the domains on qemu:///system: connection reset"}


HOSTDEV_XML = "<domain><devices><hostdev type='pci'><source><address bus='0x75' slot='0' function='1'/></source></hostdev></devices></domain>"


def fake_libvirt(monkeypatch, domains):
    """libvirt answering with DOMAINS ([(name, xml or a libvirtError code)]), all inactive."""
    libvirt = pytest.importorskip("libvirt")

    class Failure(libvirt.libvirtError):
        def __init__(self, code):
            super().__init__("failure %d" % code)
            self.code = code

        def get_error_code(self):
            return self.code

        def get_error_message(self):
            return "failure %d" % self.code

    class Domain:
        def __init__(self, name, xml):
            self._name, self._xml = name, xml

        def name(self):
            return self._name

        def isActive(self):
            return False

        def XMLDesc(self, _flags):
            if isinstance(self._xml, int):
                raise Failure(self._xml)
            return self._xml

    class Conn:
        def listAllDomains(self, _flags):
            return [Domain(name, xml) for name, xml in domains]

        def close(self):
            pass

    monkeypatch.setattr(_devices._libvirt, "connect", lambda uri, read_only: Conn())
    return libvirt


def test_hostdev_owners_skips_a_domain_undefined_meanwhile(monkeypatch):
    libvirt = fake_libvirt(monkeypatch, [("gone", None), ("guest1", HOSTDEV_XML)])
    fake_libvirt(monkeypatch, [("gone", libvirt.VIR_ERR_NO_DOMAIN), ("guest1", HOSTDEV_XML)])
    assert _devices.hostdev_owners("qemu:///system") == ({"0000:75:00.1": ["guest1"]}, {"available": True, "uri": "qemu:///system"})


def test_hostdev_owners_any_other_failure_makes_the_answer_unknown(monkeypatch):
    libvirt = fake_libvirt(monkeypatch, [])
    fake_libvirt(monkeypatch, [("guest1", HOSTDEV_XML), ("broken", libvirt.VIR_ERR_INTERNAL_ERROR)])
    owners, note = _devices.hostdev_owners("qemu:///system")
    assert owners == {} and note["available"] is False
    assert note["reason"] == "cannot read the domains on qemu:///system: failure %d" % libvirt.VIR_ERR_INTERNAL_ERROR
    fake_libvirt(monkeypatch, [("guest1", HOSTDEV_XML), ("garbled", "<domain><devices>")])
    owners, note = _devices.hostdev_owners("qemu:///system")
    assert owners == {} and note["reason"].startswith("cannot read a domain definition on qemu:///system: the domain XML is not well-formed")


def test_hostdev_owners_running_domain_holds_its_next_boot_vfs_too(empty_uri):
    libvirt = pytest.importorskip("libvirt")
    conn = libvirt.open(empty_uri)   # test:///default keeps its state while a connection is open
    base = ("<domain type='test'><name>kae-union</name><uuid>6f1d7a52-2b1c-4f6e-9d0a-5c2e8b7f4a11</uuid>"
            "<memory>131072</memory><os><type>hvm</type></os><devices>%s</devices></domain>")
    try:
        conn.defineXML(base % "").create()
        # The persistent definition gains a VF and an SR-IOV network VF while the domain runs without them.
        interface = ("<interface type='hostdev'><source><address type='pci' domain='0x0000' bus='0x76' slot='0x00' function='0x2'/>"
                     "</source></interface>")
        conn.defineXML(base % (HOSTDEV_XML[17:-19] + interface))
        owners, note = _devices.hostdev_owners(empty_uri)
        assert note["available"] is True
        assert owners == {"0000:75:00.1": ["kae-union"], "0000:76:00.2": ["kae-union"]}
    finally:
        dom = conn.lookupByName("kae-union")
        dom.destroy()
        dom.undefine()
        conn.close()


def test_check_owners_known_names_the_reason():
    known = [vf("0000:75:00.1", "zip", 0)]
    _devices.check_owners_known(known, "choose VFs")
    unknown = known + [dict(vf("0000:75:00.2", "zip", 0), owner_known=False, owner_error="cannot connect to libvirt at x: gone")]
    with pytest.raises(DeviceError) as info:
        _devices.check_owners_known(unknown, "choose VFs")
    assert str(info.value) == ("VF ownership could not be read (cannot connect to libvirt at x: gone), so 1 VFs may belong to a guest: "
                               "refusing to choose VFs. Make libvirt reachable (uri) and read the devices again with "
                               "openeuler.kae.device_info")
    bare = [{k: v for k, v in vf("0000:75:00.1", "zip", 0).items() if k != "owner_known"}]
    with pytest.raises(DeviceError, match=r"could not be read \(the device facts do not say \(no owner_known\); pass the 'devices' "
                                          r"of openeuler.kae.device_info\)"):
        _devices.check_owners_known(bare, "choose VFs")


# ---------------------------------------------------------------- selection

NODE0_FULL = [vf("0000:75:00.2", "zip", 0), vf("0000:75:00.1", "zip", 0), vf("0000:76:00.1", "sec", 0),
              vf("0000:79:00.1", "hpre", 0)]
NODE2_FULL = [vf("0000:b5:00.1", "zip", 2), vf("0000:b6:00.1", "sec", 2), vf("0000:b9:00.1", "hpre", 2)]


def test_select_default_request_lowest_bdfs_in_request_order():
    chosen = _devices.select_vfs(NODE0_FULL + NODE2_FULL)
    assert [d["bdf"] for d in chosen] == ["0000:75:00.1", "0000:79:00.1", "0000:76:00.1"]


def test_select_prefers_node_and_falls_back():
    assert {d["numa_node"] for d in _devices.select_vfs(NODE0_FULL + NODE2_FULL, prefer_node=2)} == {2}
    node2_without_hpre = [d for d in NODE2_FULL if d["engine"] != "hpre"]
    assert {d["numa_node"] for d in _devices.select_vfs(NODE0_FULL + node2_without_hpre, prefer_node=2)} == {0}
    # An unknown preferred node is ignored.
    assert {d["numa_node"] for d in _devices.select_vfs(NODE0_FULL, prefer_node=5)} == {0}


def test_select_skips_busy_unbound_and_old_vfs():
    devices = [vf("0000:75:00.1", "zip", 0, domain="guest1"), vf("0000:75:00.2", "zip", 0, driver="hisi_zip"),
               vf("0000:75:00.3", "zip", 0, migratable=False), vf("0000:75:00.4", "zip", 0, driver="vfio-pci")]
    assert [d["bdf"] for d in _devices.select_vfs(devices, {"zip": 1})] == ["0000:75:00.4"]
    assert _devices.select_vfs(devices, {"zip": 0}) == []


def test_select_failure_names_engine_and_node():
    devices = [d for d in NODE0_FULL if d["engine"] != "hpre"] + [d for d in NODE2_FULL if d["engine"] != "sec"]
    with pytest.raises(DeviceError) as err:
        _devices.select_vfs(devices, prefer_node=2)
    assert str(err.value) == (
        "no NUMA node has 1 zip, 1 hpre, 1 sec free VFs (unassigned, on hisi_acc_vfio_pci or vfio-pci, migratable hardware): "
        "node 2 lacks sec (0 free of 1 wanted); node 0 lacks hpre (0 free of 1 wanted)")
    busy = [vf("0000:75:00.1", "zip", 0, domain="g")]
    with pytest.raises(DeviceError, match=r"node 0 lacks zip \(0 free of 2 wanted\)$"):
        _devices.select_vfs(busy, {"zip": 2})


def test_select_without_any_vf():
    with pytest.raises(DeviceError, match="the host has no KAE VFs at all; create them with openeuler.kae.sriov"):
        _devices.select_vfs([])


@pytest.mark.parametrize("request_, message", [
    ({}, r"request must be a non-empty mapping of engine to VF count such as \{'zip': 1, 'hpre': 1, 'sec': 1\}, got dict$"),
    (["zip"], "request must be a non-empty mapping .*, got list$"),
    ({"rsa": 1}, "request names engine 'rsa'; known engines are zip, sec, hpre$"),
    ({1: 1}, "request names engine 1; known engines are zip, sec, hpre$"),
    ({"zip": -1}, r"request\['zip'\] must be at least 0, got -1 \(a count of VFs\)$"),
    ({"zip": "1"}, r"request\['zip'\] must be a whole number, got str '1' \(a count of VFs\)$"),
    ({"zip": True}, r"request\['zip'\] must be a whole number, got bool True"),
    ({"zip": 1.0}, r"request\['zip'\] must be a whole number, got float 1.0"),
    ({"zip": float("nan")}, r"request\['zip'\] must be a whole number, got float nan"),
    ({"zip": 10 ** 5000}, r"request\['zip'\] must be at most 65535, got a 16610-bit number"),
])
def test_select_bad_request(request_, message):
    with pytest.raises(DeviceError, match=message):
        _devices.select_vfs(NODE0_FULL, request_)


def test_select_bad_devices():
    with pytest.raises(DeviceError, match="expected the device list of openeuler.kae.device_info \\(its 'devices'\\), got dict"):
        _devices.select_vfs({"devices": []})
    with pytest.raises(DeviceError, match=r"^devices\[0\] lacks 'engine', 'function', 'numa_node'; pass the 'devices' of"):
        _devices.select_vfs([{"bdf": "x"}])


GOOD_VF = vf("0000:75:00.1", "zip", 0)
GOOD_PF = {"bdf": "0000:75:00.0", "engine": "zip", "function": "pf", "numa_node": 0, "driver": "hisi_zip", "revision": "0x30",
           "migratable_hw": True, "sriov_totalvfs": 63, "sriov_numvfs": 1, "vfs": ["0000:75:00.1"]}


@pytest.mark.parametrize("device, message", [
    ("0000:75:00.1", r"devices\[1\] must be a mapping, got str '0000:75:00.1'"),
    ({"bdf": "0000:75:00.1"}, r"devices\[1\] lacks 'engine', 'function', 'numa_node'"),
    (dict(GOOD_VF, bdf="75:00.1"), r"devices\[1\].bdf must be a PCI address DDDD:BB:SS.F such as 0000:75:00.1, got '75:00.1'"),
    (dict(GOOD_VF, bdf="0000:75:00.1\x00"), r"devices\[1\].bdf must not contain a NUL byte"),
    (dict(GOOD_VF, bdf="0000:\u0667\u0665:00.1"), r"devices\[1\].bdf must be a PCI address"),
    (dict(GOOD_VF, bdf=7501), r"devices\[1\].bdf must be a string, got int 7501"),
    (dict(GOOD_VF, engine="rsa"), r"devices\[1\].engine must be one of zip, sec, hpre, got str 'rsa'"),
    (dict(GOOD_VF, engine=["zip"]), r"devices\[1\].engine must be one of zip, sec, hpre, got list \['zip'\]"),
    (dict(GOOD_VF, function="VF"), r"devices\[1\].function must be one of pf, vf, got str 'VF'"),
    (dict(GOOD_VF, numa_node="0"), r"devices\[1\].numa_node must be a whole number, got str '0'"),
    (dict(GOOD_VF, numa_node=0.0), r"devices\[1\].numa_node must be a whole number, got float 0.0"),
    (dict(GOOD_VF, numa_node=-2), r"devices\[1\].numa_node must be at least -1, got -2"),
    (dict(GOOD_VF, numa_node=10 ** 400), r"devices\[1\].numa_node must be at most 65535"),
    (dict(GOOD_VF, driver=5), r"devices\[1\].driver must be a string, got int 5"),
    (dict(GOOD_VF, domain="g\x00"), r"devices\[1\].domain must not contain a NUL byte"),
    (dict(GOOD_VF, domains="g"), r"devices\[1\].domains must be a list, got str 'g'"),
    (dict(GOOD_VF, domains=[None]), r"devices\[1\].domains\[0\] must be a string, got NoneType None"),
    (dict(GOOD_VF, owner_known="yes"), r"devices\[1\].owner_known must be true or false, got str"),
    (dict(GOOD_VF, migratable_hw=1), r"devices\[1\].migratable_hw must be true or false, got int"),
    (dict(GOOD_VF, pf="0000:75:00.0/.."), r"devices\[1\].pf must be a PCI address"),
    (dict(GOOD_PF, sriov_numvfs="4"), r"devices\[1\].sriov_numvfs must be a whole number, got str '4'"),
    (dict(GOOD_PF, sriov_totalvfs=float("inf")), r"devices\[1\].sriov_totalvfs must be a whole number, got float inf"),
    (dict(GOOD_PF, vfs=["0000:75:00.1", "x"]), r"devices\[1\].vfs\[1\] must be a PCI address"),
    (dict(GOOD_PF, revision=48), r"devices\[1\].revision must be a string, got int 48"),
])
def test_check_devices_names_the_item_and_field(device, message):
    with pytest.raises(DeviceError, match="^" + message + ".*; pass the 'devices' of openeuler.kae.device_info$"):
        _devices.check_devices([GOOD_PF, device])
    assert _devices.check_devices([GOOD_PF, GOOD_VF]) == [GOOD_PF, GOOD_VF]


def test_select_refuses_when_ownership_is_unknown():
    devices = [dict(d, owner_known=False, owner_error="cannot connect to libvirt at qemu:///system: no socket") for d in NODE0_FULL]
    with pytest.raises(DeviceError, match=r"^VF ownership could not be read \(cannot connect to libvirt at qemu:///system: no socket\), "
                                          r"so 4 VFs may belong to a guest: refusing to choose VFs"):
        _devices.select_vfs(devices)
    # One VF of unknown owner is enough: device_info never mixes, but a list put together by hand might.
    with pytest.raises(DeviceError, match="so 1 VFs may belong to a guest"):
        _devices.select_vfs(NODE0_FULL[:1] + devices[1:2] + NODE2_FULL)


# ---------------------------------------------------------------- parity

def facts(root):
    sysfs = Sysfs(root)
    return {"devices": _devices.scan(sysfs), "pf_q_num": _devices.read_pf_q_num(sysfs)}


def test_parity_identical_hosts(kae_host):
    assert _devices.parity(facts(kae_host()), facts(kae_host())) == []
    assert _devices.parity(facts(kae_host())["devices"], facts(kae_host())["devices"]) == []


def test_parity_names_each_mismatch(kae_host):
    src = facts(kae_host(vfs=4, pf_q_num=64))
    dst = facts(kae_host(vfs=2, pf_q_num=256, revision="0x21", without=[("hpre", 0), ("hpre", 2)], pf_drivers={("sec", 0): None}))
    problems = _devices.parity(src, dst)
    assert "engine hpre is present on the source but not on the destination" in problems
    assert "pf_q_num of zip differs: source 64, destination 256 (load hisi_zip with the same pf_q_num on both)" in problems
    assert "PF 0000:75:00.0: revision differs: source 0x30, destination 0x21" in problems
    assert "PF 0000:b6:00.0: sriov_numvfs differs: source 4, destination 2" in problems
    assert "PF 0000:79:00.0 (hpre, node 0) exists on the source but not on the destination" in problems
    # 4 matching PFs x (revision, sriov_numvfs), 2 PFs missing, 3 pf_q_num, 1 engine.
    assert len(problems) == 4 + 4 + 2 + 3 + 1
    reverse = _devices.parity(dst, src)
    assert "engine hpre is present on the destination but not on the source" in reverse
    assert "PF 0000:79:00.0 (hpre, node 0) exists on the destination but not on the source" in reverse


def test_parity_pf_q_num_only_when_both_readable(kae_host):
    src = facts(kae_host(pf_q_num=64))
    dst = facts(kae_host(pf_q_num=256))
    assert _devices.parity(src, dst["devices"]) == []
    del dst["pf_q_num"]["zip"]
    assert len(_devices.parity(src, dst)) == 2


def test_parity_bad_input():
    with pytest.raises(DeviceError, match="the destination facts: expected the device list .* got str"):
        _devices.parity([], "kae-lab-b")
    with pytest.raises(DeviceError, match="the source facts: expected the device list"):
        _devices.parity(None, [])


@pytest.mark.parametrize("facts, message", [
    ({"devices": [dict(GOOD_PF, numa_node="0")]}, r"the source facts: devices\[0\].numa_node must be a whole number, got str '0'"),
    ({"devices": [GOOD_PF], "pf_q_num": {"zip": "64"}}, r"the source facts: pf_q_num\['zip'\] must be a whole number, got str '64'"),
    ({"devices": [GOOD_PF], "pf_q_num": {"rsa": 64}}, r"the source facts: a key of pf_q_num must be one of zip, sec, hpre, got str 'rsa'"),
    ({"devices": [GOOD_PF], "pf_q_num": {1: 64, "zip": 64}}, r"the source facts: a key of pf_q_num must be one of"),
    ({"devices": [GOOD_PF], "pf_q_num": [64]}, r"the source facts: pf_q_num must be a mapping, got list"),
    ({"devices": [GOOD_PF], "pf_q_num": {"zip": 10 ** 5000}}, r"the source facts: pf_q_num\['zip'\] must be at most 2147483648"),
    ([{"engine": "zip"}], r"the source facts: devices\[0\] lacks 'bdf', 'function', 'numa_node'"),
])
def test_parity_names_the_bad_field(facts, message):
    with pytest.raises(DeviceError, match="^" + message):
        _devices.parity(facts, {"devices": [GOOD_PF], "pf_q_num": {"zip": 64}})


def test_with_owners_replaces_what_older_facts_said(kae_host):
    devices = _devices.scan(Sysfs(kae_host(vfs=2)))
    _devices.with_owners(devices, {}, {"available": False, "reason": "libvirt is down"})
    _devices.with_owners(devices, {"0000:75:00.1": ["guest1"]}, {"available": True})
    held = by_bdf(devices)["0000:75:00.1"]
    assert held["domain"] == "guest1" and held["owner_known"] is True and "owner_error" not in held
    _devices.with_owners(devices, {}, {"available": False, "reason": "cannot read the domains on B: gone"})
    assert by_bdf(devices)["0000:75:00.1"]["owner_error"] == "cannot read the domains on B: gone"
    assert by_bdf(devices)["0000:75:00.1"]["domain"] is None
