# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Simulated Kunpeng 920 sysfs trees (lab/simsysfs.py) for the device tests.

    def test_x(kae_host):
        root = kae_host(without=[("hpre", 2)])      # simsysfs.build() keywords
        devices = _devices.scan(Sysfs(root))

While a test runs, every Sysfs.write is followed by one pass of the simulated kernel, so a module that
writes sriov_numvfs or drivers_probe sees the VFs and driver links appear as on a real host.
"""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.openeuler.kae.lab import simsysfs
from ansible_collections.openeuler.kae.plugins.module_utils import _sysfs
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs

# A libvirt test-driver node with one running domain holding the ZIP VF 0000:75:00.2 of node 0.
GUEST_NODE_XML = """<node>
  <domain type='test'>
    <name>guest1</name>
    <memory>131072</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <devices>
      <hostdev mode='subsystem' type='pci' managed='no'>
        <source><address domain='0x0000' bus='0x75' slot='0x00' function='0x2'/></source>
      </hostdev>
    </devices>
  </domain>
</node>
"""

# The same running guest1, and a domain "parked" that is only defined and names VFs 0000:75:00.2 and 0000:75:00.3.
PARKED_NODE_XML = GUEST_NODE_XML.replace("</node>", """  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>parked</name>
    <memory>131072</memory>
    <os><type>hvm</type></os>
    <devices>
      <hostdev mode='subsystem' type='pci' managed='no'>
        <source><address domain='0x0000' bus='0x75' slot='0x00' function='0x2'/></source>
      </hostdev>
      <hostdev mode='subsystem' type='pci' managed='no'>
        <source><address domain='0x0000' bus='0x75' slot='0x00' function='0x3'/></source>
      </hostdev>
    </devices>
    <test:runstate>5</test:runstate>
  </domain>
</node>
""")


@pytest.fixture(autouse=True)
def fresh_libvirt_error():
    """Forget libvirt's last error after each test: a libvirtError made by hand takes its message from it."""
    yield
    libvirt = sys.modules.get("libvirt")
    if libvirt is not None:
        libvirt.virResetLastError()


@pytest.fixture
def kae_host(tmp_path, monkeypatch):
    """Factory: kae_host(**build_kwargs) -> root of a new simulated tree (the kernel follows writes)."""
    original_write = Sysfs.write

    def write_then_play(self, rel, value):
        original_write(self, rel, value)
        simsysfs.play(self.root)

    monkeypatch.setattr(Sysfs, "write", write_then_play)
    counter = [0]

    def make(**kwargs):
        counter[0] += 1
        root = str(tmp_path / ("sysfs%d" % counter[0]))
        simsysfs.build(root, **kwargs)
        return root

    return make


def _node_uri(tmp_path, name, node_xml):
    pytest.importorskip("libvirt")
    path = tmp_path / name
    path.write_text(node_xml)
    return "test://" + str(path)


@pytest.fixture
def guest_uri(tmp_path):
    """libvirt test-driver URI whose domain guest1 holds VF 0000:75:00.2 (needs libvirt-python)."""
    return _node_uri(tmp_path, "node.xml", GUEST_NODE_XML)


@pytest.fixture
def parked_uri(tmp_path):
    """libvirt test-driver URI: guest1 runs with VF 0000:75:00.2; parked, only defined, names 0000:75:00.2 and .3."""
    return _node_uri(tmp_path, "parked.xml", PARKED_NODE_XML)


@pytest.fixture
def deny_read(monkeypatch):
    """deny_read(SUFFIX): opening a file whose path ends with SUFFIX fails with EACCES, as an unreadable attribute does."""
    real_open = os.open

    def deny(suffix):
        def denied(path, *args, **kwargs):
            if str(path).endswith(suffix):
                raise PermissionError(13, "Permission denied")
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(_sysfs.os, "open", denied)

    return deny


@pytest.fixture
def empty_uri():
    """libvirt test-driver URI with one domain and no hostdevs (needs libvirt-python)."""
    pytest.importorskip("libvirt")
    return "test:///default"


@pytest.fixture
def unreachable_uri():
    """A URI libvirt cannot open: modules must carry on (device_info) or refuse (sriov), saying why."""
    return "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
