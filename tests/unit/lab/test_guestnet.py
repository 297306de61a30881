# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab guest's NIC (lab/guestnet.py): the in-host bridge, the guest's modules and /init lines."""

from __future__ import annotations

import glob
import gzip
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.openeuler.kae.lab import guestnet


def test_a_new_host_gets_a_veth_pair_and_a_bridge_then_both_are_up():
    commands = guestnet.host_link_commands(4242, "kaelab-a", "kaelab0", lambda name: False)
    inside = ["nsenter", "-t", "4242", "-n", "--", "ip"]
    assert commands == [
        ["ip", "link", "add", "kaelab-a-g", "type", "veth", "peer", "name", "kaelab-a-gp"],
        ["ip", "link", "set", "kaelab-a-gp", "netns", "4242"],
        inside + ["link", "set", "kaelab-a-gp", "name", "guestlink"],
        inside + ["link", "add", "kaeguests0", "type", "bridge"],
        ["ip", "link", "set", "kaelab-a-g", "master", "kaelab0", "up"],
        inside + ["link", "set", "guestlink", "master", "kaeguests0", "up"],
        inside + ["link", "set", "kaeguests0", "up"],
    ]


def test_a_host_with_its_guest_link_only_brings_it_up():
    commands = guestnet.host_link_commands(7, "kaelab-b", "kaelab0", lambda name: name == "kaelab-b-g")
    inside = ["nsenter", "-t", "7", "-n", "--", "ip"]
    assert commands == [["ip", "link", "set", "kaelab-b-g", "master", "kaelab0", "up"],
                        inside + ["link", "set", "guestlink", "master", "kaeguests0", "up"],
                        inside + ["link", "set", "kaeguests0", "up"]]


def test_link_names_stay_within_the_kernels_limit():
    with pytest.raises(ValueError, match="longer than 15"):
        guestnet.controller_link("kaelab-abcdefghi")


def test_interface_is_a_virtio_nic_on_the_guest_bridge():
    nic = ET.fromstring(guestnet.interface_xml())
    assert nic.get("type") == "bridge" and nic.find("source").get("bridge") == guestnet.GUEST_BRIDGE
    assert nic.find("model").get("type") == "virtio" and nic.find("mac").get("address") == guestnet.GUEST_MAC


def test_init_loads_every_module_before_the_address_is_set():
    lines = guestnet.init_lines(24).splitlines()
    assert lines[:len(guestnet.NET_MODULES)] == ["insmod /lib/modules/%s.ko" % name for name in guestnet.NET_MODULES]
    assert "ip addr add 10.77.231.50/24 dev eth0" in lines
    assert lines.index("ip addr add 10.77.231.50/24 dev eth0") > lines.index("insmod /lib/modules/virtio_net.ko")
    # The announcement comes once eth0 is up, in the background so that the heartbeat and load start at once.
    announce = "arping -U -c 3 -I eth0 10.77.231.50 >/dev/null 2>&1 &"
    assert lines.index(announce) > lines.index("ip link set eth0 up")


DEBS = sorted(glob.glob("/var/lib/kae-lab/images/debs/linux-image-*.deb"))


@pytest.mark.skipif(not DEBS, reason="the lab's guest kernel package has not been downloaded here")
def test_modules_come_from_the_lab_kernel_package_in_load_order():
    modules = guestnet.net_modules(DEBS[-1])
    assert [name for name, _data in modules] == [name + ".ko" for name in guestnet.NET_MODULES]
    assert all(data[:4] == b"\x7fELF" for _name, data in modules)


@pytest.mark.skipif(not DEBS, reason="the lab's guest kernel package has not been downloaded here")
def test_modules_are_unpacked_once_then_read_from_the_cache(tmp_path):
    cache = tmp_path / "net-modules"
    first = guestnet.net_modules(DEBS[-1], cache)
    # Cached: the package is not read again (a path that does not exist would fail to unpack).
    assert guestnet.net_modules(str(tmp_path / "absent.deb"), cache) == first
    assert sorted(path.name for path in cache.iterdir()) == sorted(name for name, _data in first)


def test_only_the_main_lab_guest_has_the_nic():
    from ansible_collections.openeuler.kae.lab import kaelab  # pylint: disable=import-outside-toplevel
    nics = ET.fromstring(kaelab.guest_xml()).findall("devices/interface")
    assert [nic.find("mac").get("address") for nic in nics] == [guestnet.GUEST_MAC]
    assert ET.fromstring(kaelab.guest_xml(kaelab.fleet_layout(2, 1).guests[0])).findall("devices/interface") == []
    # The main guest's /init brings the NIC up before its load starts; the light guests' /init has no NIC to bring up.
    assert kaelab.GUEST_INIT.index(guestnet.init_lines(kaelab.PREFIX_LEN)) < kaelab.GUEST_INIT.index("dd if=/dev/urandom")
    assert "insmod" not in kaelab.FLEET_INIT


def test_the_main_guests_initramfs_carries_the_modules(tmp_path):
    from ansible_collections.openeuler.kae.lab import kaelab  # pylint: disable=import-outside-toplevel
    path = tmp_path / "initrd.img"
    kaelab.ensure_initrd(path, "#!/bin/sh\n", modules=[("virtio_net.ko", b"\x7fELF-module-bytes")])
    archive = gzip.decompress(path.read_bytes())
    assert b"lib/modules/virtio_net.ko\0" in archive and b"\x7fELF-module-bytes" in archive
    kaelab.ensure_initrd(path, "#!/bin/sh\n")
    assert b"lib/modules/virtio_net.ko" not in gzip.decompress(path.read_bytes())
