# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The lab's simulated VF holdings end to end on libvirt's test driver: guest_config writes <metadata><kae:vfs> (definition
and live domain), device_info and hypervisor_info count it on a simulated lab tree only, and a VF one lab guest holds is
refused to another."""

from __future__ import annotations

import pytest

libvirt = pytest.importorskip("libvirt")

from ansible_collections.openeuler.kae.lab import simsysfs  # noqa: E402
from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx  # noqa: E402
from ansible_collections.openeuler.kae.plugins.modules import device_info, guest_config, hostdev_remap, hypervisor_info  # noqa: E402

NS = "http://openeuler.org/xmlns/kae/lab-vfs/1.0"
ZIP0, SEC0, HPRE0, ZIP1 = "0000:75:00.1", "0000:76:00.1", "0000:79:00.1", "0000:75:00.2"


def lab_domain(name, bdfs=(), running=True):
    metadata = ("<metadata><kae:vfs xmlns:kae='%s'>%s</kae:vfs></metadata>"
                % (NS, "".join("<kae:vf address='%s'/>" % bdf for bdf in bdfs))) if bdfs else ""
    runstate = "" if running else "<test:runstate>5</test:runstate>"
    return ("<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>%s</name>%s"
            "<memory unit='KiB'>98304</memory><vcpu>1</vcpu><os><type arch='i686'>hvm</type></os><devices/>%s</domain>"
            % (name, metadata, runstate))


@pytest.fixture
def node_uri(tmp_path):
    """A test-driver host: lab-a runs holding ZIP0 and SEC0 in its metadata, lab-off (not running) holds HPRE0, lab-b holds none."""
    path = tmp_path / "node.xml"
    domains = (lab_domain("lab-a", (ZIP0, SEC0)), lab_domain("lab-off", (HPRE0,), running=False), lab_domain("lab-b"))
    path.write_text("<node>%s</node>" % "".join(domains))
    return "test://%s" % path


@pytest.fixture(autouse=True)
def lock_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(guest_config, "LOCK_DIR", str(tmp_path / "lock"), raising=False)


@pytest.fixture
def trees(tmp_path):
    """{"lab": a simulated tree with the lab marker, "plain": the same layout without it} (2 VFs per PF)."""
    roots = {"lab": str(tmp_path / "lab"), "plain": str(tmp_path / "plain")}
    simsysfs.build(roots["lab"], vfs=2, lab_marker=True)
    simsysfs.build(roots["plain"], vfs=2)
    return roots


def held(result):
    return dict((d["bdf"], d["domains"]) for d in result["devices"] if d["function"] == "vf" and d["domains"])


def test_device_info_counts_metadata_holdings_on_a_lab_tree(run_module, node_uri, trees):
    result = run_module(device_info, {"sysfs_root": trees["lab"], "uri": node_uri})
    assert result["lab"] is True
    assert held(result) == {ZIP0: ["lab-a"], SEC0: ["lab-a"], HPRE0: ["lab-off"]}
    assert {engine: counts["free_vfs"] for engine, counts in result["engines"].items()} == {"zip": 3, "sec": 3, "hpre": 3}


def test_production_ignores_the_metadata(run_module, node_uri, trees):
    result = run_module(device_info, {"sysfs_root": trees["plain"], "uri": node_uri})
    assert result["lab"] is False and held(result) == {}
    assert {engine: counts["free_vfs"] for engine, counts in result["engines"].items()} == {"zip": 4, "sec": 4, "hpre": 4}


def test_hypervisor_info_sees_the_same_holdings(run_module, node_uri, trees):
    lab = run_module(hypervisor_info, {"uri": node_uri, "host_name": "hv-a", "sysfs_root": trees["lab"], "active_only": False})
    assert dict((g["name"], g["vfs"]) for g in lab["guests"]) == {"lab-a": [ZIP0, SEC0], "lab-b": [], "lab-off": [HPRE0]}
    devices = run_module(device_info, {"sysfs_root": trees["lab"], "uri": node_uri})["devices"]
    kae = run_module(hypervisor_info, {"uri": node_uri, "host_name": "hv-a", "sysfs_root": trees["lab"], "kae_only": True,
                                       "devices": devices})
    assert [g["name"] for g in kae["guests"]] == ["lab-a"]
    plain = run_module(hypervisor_info, {"uri": node_uri, "host_name": "hv-a", "sysfs_root": trees["plain"]})
    assert dict((g["name"], g["vfs"]) for g in plain["guests"]) == {"lab-a": [], "lab-b": []}
    # Without sysfs_root the module reads /sys, which is never a lab tree.
    assert all(g["vfs"] == [] for g in run_module(hypervisor_info, {"uri": node_uri, "host_name": "hv-a"})["guests"])


def guest_params(uri, root, lab_vfs, domain="lab-b", **extra):
    return dict(dict(domain=domain, uri=uri, sysfs_root=root, lab_vfs=lab_vfs), **extra)


def live_and_defined(uri, name):
    conn = libvirt.open(uri)
    try:
        dom = conn.lookupByName(name)
        return (dx.lab_vf_bdfs(dx.parse_domain(dom.XMLDesc(0))),
                dx.lab_vf_bdfs(dx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))))
    finally:
        conn.close()


def test_guest_config_records_the_holdings_live_and_defined_without_a_restart(run_module, trees):
    conn = libvirt.open("test:///default")   # the default node keeps its state while a connection is open
    try:
        conn.defineXML(lab_domain("lab-run")).create()
        args = guest_params("test:///default", trees["lab"], [ZIP1, "75:00.1"], domain="lab-run")
        predicted = run_module(guest_config, args, check_mode=True)
        assert predicted["changed"] is True and predicted["lab_vfs"] == {"added": [ZIP0, ZIP1], "removed": []}
        assert live_and_defined("test:///default", "lab-run") == ([], [])
        first = run_module(guest_config, args)
        assert first["changed"] is True and first["restart_required"] is False and first["restarted"] is False
        assert live_and_defined("test:///default", "lab-run") == ([ZIP0, ZIP1], [ZIP0, ZIP1])
        assert run_module(guest_config, args)["changed"] is False
        emptied = run_module(guest_config, dict(args, lab_vfs=[]))
        assert emptied["changed"] is True and emptied["lab_vfs"] == {"added": [], "removed": [ZIP0, ZIP1]}
        assert live_and_defined("test:///default", "lab-run") == ([], [])
    finally:
        dom = conn.lookupByName("lab-run")
        dom.destroy()
        dom.undefine()
        conn.close()


def test_guest_config_refuses_a_vf_another_lab_guest_holds(fail_module, node_uri, trees):
    failed = fail_module(guest_config, guest_params(node_uri, trees["lab"], [SEC0, HPRE0, ZIP1]))
    assert failed["msg"].startswith("refusing lab_vfs for domain lab-b: %s is held by domain lab-a (running), lab-a (in its definition); "
                                    "%s is held by domain lab-off (defined, not running)." % (SEC0, HPRE0))
    assert live_and_defined(node_uri, "lab-b") == ([], [])


def test_guest_config_refuses_lab_vfs_outside_the_lab(fail_module, node_uri, trees):
    failed = fail_module(guest_config, guest_params(node_uri, trees["plain"], [ZIP1]))
    assert failed["msg"].startswith("lab_vfs records simulated VF holdings and is for the lab only: the tree at %s is not a "
                                    "simulated one (no kae-lab-simulated at its root)" % trees["plain"])
    bad = fail_module(guest_config, guest_params(node_uri, trees["lab"], ["slot 3"]))
    assert bad["msg"].startswith("lab_vfs: 'slot 3' is not a PCI address")
    not_a_vf = fail_module(guest_config, guest_params(node_uri, trees["lab"], ["0000:75:00.0"]))
    assert "0000:75:00.0 is a KAE zip PF, not a VF" in not_a_vf["msg"]


def test_hostdev_remap_moves_the_lab_holdings_to_free_vfs_of_the_destination(run_module, node_uri, trees):
    # The destination is the node where lab-a holds ZIP0 and SEC0; the migrating guest names the same addresses.
    source = run_module(device_info, {"sysfs_root": trees["plain"], "uri": node_uri})["devices"]
    destination = run_module(device_info, {"sysfs_root": trees["lab"], "uri": node_uri})["devices"]
    mover = lab_domain("mover", (ZIP0, SEC0))
    args = {"domain_xml": mover, "source_devices": source, "destination_devices": destination, "sysfs_root": trees["lab"]}
    lab = run_module(hostdev_remap, args)
    # Node 0's other VFs are their PFs' last ones (another queue class): the same-class VFs of node 2 are taken.
    assert lab["mapping"] == {ZIP0: "0000:b5:00.1", SEC0: "0000:b6:00.1"} and lab["remapped"] is True and lab["numa_node"] == 2
    assert dx.lab_vf_bdfs(dx.parse_domain(lab["destination_xml"])) == ["0000:b5:00.1", "0000:b6:00.1"]
    # Outside the lab the metadata is no VF of the guest: nothing to map.
    plain = run_module(hostdev_remap, dict(args, sysfs_root=trees["plain"]))
    assert plain["mapping"] == {} and plain["destination_xml"] is None
