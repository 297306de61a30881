# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab guest on the lab network: what kaelab.py needs to give kae-guest a NIC that the controller can probe.

Each lab host gets a second veth pair for its guests, separate from the host's own link (so the fault tests that
cut a host's link leave the guest's path alone and the host's address stays on eth0): the controller's end sits on
the lab bridge kaelab0, the host's end on a bridge inside the host (GUEST_BRIDGE) that the guest's tap joins. After a
migration QEMU announces the guest's MAC from the destination, and kaelab0 learns the new port.

The guest's kernel (the Debian cloud kernel) has virtio-net as modules: they are taken from the same kernel package
as the kernel and loaded by /init, which then sets GUEST_ADDR on eth0.
"""

from __future__ import annotations

import io
from pathlib import Path
import subprocess
import tarfile

GUEST_ADDR = "10.77.231.50"
GUEST_MAC = "52:54:00:4b:ae:50"
GUEST_BRIDGE = "kaeguests0"
# Inside the host the guests' link is named like this; on the controller it is the host's veth name plus this suffix.
HOST_LINK = "guestlink"
CONTROLLER_SUFFIX = "-g"
# virtio-net and what it needs, in load order (each after the modules whose symbols it uses).
NET_MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
               "failover", "net_failover", "virtio_net")


def controller_link(host_veth: str) -> str:
    """The controller's end of a host's guest link (at most 15 characters, the kernel's limit)."""
    name = host_veth + CONTROLLER_SUFFIX
    if len(name) > 15:
        raise ValueError("link name %r is longer than 15 characters" % name)
    return name


def net_modules(deb: str, cache_dir=None) -> list:
    """(file name, bytes) of NET_MODULES from the kernel package DEB, in load order.

    With CACHE_DIR (a directory for this DEB) they are read from there once extracted: unpacking the whole package
    takes seconds, and every `up` needs the modules to check the initramfs.
    """
    if cache_dir is not None:
        cached = [Path(cache_dir) / (name + ".ko") for name in NET_MODULES]
        if all(path.is_file() for path in cached):
            return [(path.name, path.read_bytes()) for path in cached]
    modules = _extract_modules(deb)
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        for name, data in modules:
            part = Path(cache_dir) / (name + ".part")
            part.write_bytes(data)
            part.rename(Path(cache_dir) / name)
    return modules


def _extract_modules(deb: str) -> list:
    tar_bytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    found = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as archive:
        for member in archive:
            base = member.name.rsplit("/", 1)[-1]
            if member.isfile() and "/kernel/" in member.name and base.endswith(".ko") and base[:-3] in NET_MODULES:
                found[base[:-3]] = archive.extractfile(member).read()
    missing = [name for name in NET_MODULES if name not in found]
    if missing:
        raise ValueError("%s lacks the kernel modules %s" % (deb, ", ".join(missing)))
    return [(name + ".ko", found[name]) for name in NET_MODULES]


def init_lines(prefix_len: int) -> str:
    """/init lines that load virtio-net and put GUEST_ADDR on eth0 (the kernel answers ICMP echo by itself).

    The guest then announces its address (unsolicited ARP, 3 over 2 s, in the background): a guest started again on
    the other host must not wait for the lab bridge's and the controller's old entries to age out before it answers.
    """
    loads = "".join("insmod /lib/modules/%s.ko\n" % name for name in NET_MODULES)
    return loads + ("ip link set lo up\nip addr add {addr}/{plen} dev eth0\nip link set eth0 up\n"
                    "arping -U -c 3 -I eth0 {addr} >/dev/null 2>&1 &\n").format(addr=GUEST_ADDR, plen=prefix_len)


def interface_xml() -> str:
    """The guest's NIC in its domain XML: virtio on the host's guest bridge, with a fixed MAC."""
    return ("    <interface type='bridge'>\n      <mac address='%s'/>\n      <source bridge='%s'/>\n"
            "      <model type='virtio'/>\n    </interface>\n" % (GUEST_MAC, GUEST_BRIDGE))


def host_link_commands(pid: int, host_veth: str, lab_bridge: str, link_exists) -> list:
    """Commands (argument lists) that give the host in namespace PID its guest bridge and link.

    LINK_EXISTS(name) tells whether a link exists on the controller: a host that has its guest link already gets only
    the commands that bring it up again, so that this runs on every `up`, for a new host and a running one alike.
    """
    outside = controller_link(host_veth)
    net = ["nsenter", "-t", str(pid), "-n", "--", "ip"]
    commands = []
    if not link_exists(outside):
        commands += [["ip", "link", "add", outside, "type", "veth", "peer", "name", outside + "p"],
                     ["ip", "link", "set", outside + "p", "netns", str(pid)],
                     net + ["link", "set", outside + "p", "name", HOST_LINK],
                     net + ["link", "add", GUEST_BRIDGE, "type", "bridge"]]
    return commands + [["ip", "link", "set", outside, "master", lab_bridge, "up"],
                       net + ["link", "set", HOST_LINK, "master", GUEST_BRIDGE, "up"],
                       net + ["link", "set", GUEST_BRIDGE, "up"]]
