# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's simulated VF holdings: <metadata><kae:vfs> in a domain XML, and when they count (simulated trees only)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ansible_collections.openeuler.kae.lab import simsysfs
from ansible_collections.openeuler.kae.plugins.module_utils import _devices
from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs

NS = "http://openeuler.org/xmlns/kae/lab-vfs/1.0"
HELD = """<domain type='test'><name>lab1</name>
  <metadata>
    <other:note xmlns:other='http://example.org/other'><other:vf address='0000:75:00.3'/></other:note>
    <kae:vfs xmlns:kae='%s'><kae:vf address='75:00.1'/><kae:vf address='0000:76:00.1'/><kae:vf address='0000:75:00.1'/></kae:vfs>
  </metadata>
  <devices>
    <hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='0x79' slot='0x00' function='0x1'/></source></hostdev>
  </devices>
</domain>""" % NS


def test_the_element_and_namespace_are_the_documented_ones():
    assert dx.LAB_VFS_NS == NS and dx.LAB_VFS_PREFIX == "kae" and _devices.LAB_MARKER == simsysfs.LAB_MARKER


def test_lab_vfs_are_read_normalised_once_each_and_other_metadata_is_not_theirs():
    assert dx.lab_vf_bdfs(dx.parse_domain(HELD)) == ["0000:75:00.1", "0000:76:00.1"]
    assert dx.lab_vf_bdfs(dx.parse_domain("<domain><name>x</name></domain>")) == []


def test_an_unreadable_holding_is_an_error_not_no_holding():
    bad = "<domain><metadata><kae:vfs xmlns:kae='%s'><kae:vf address='slot 3'/></kae:vfs></metadata></domain>" % NS
    with pytest.raises(dx.DomainXMLError, match="'slot 3' is not a PCI address"):
        dx.lab_vf_bdfs(dx.parse_domain(bad))


def test_hostdev_bdfs_counts_the_metadata_only_in_lab_mode():
    assert _devices.hostdev_bdfs(HELD) == ["0000:79:00.1"]
    assert _devices.hostdev_bdfs(HELD, lab=True) == ["0000:79:00.1", "0000:75:00.1", "0000:76:00.1"]


def test_set_lab_vfs_replaces_the_list_and_keeps_other_metadata():
    root = dx.parse_domain(HELD)
    assert dx.set_lab_vfs(root, ["0000:76:00.1", "0000:b5:00.2"]) == {"added": ["0000:b5:00.2"], "removed": ["0000:75:00.1"]}
    assert dx.lab_vf_bdfs(root) == ["0000:76:00.1", "0000:b5:00.2"]
    assert root.find("metadata/{http://example.org/other}note") is not None
    assert len(root.findall("metadata/{%s}vfs" % NS)) == 1
    # The written text keeps the documented prefix and parses back to the same holdings.
    text = dx.to_string(root)
    assert "xmlns:kae=\"%s\"" % NS in text and "<kae:vf address=\"0000:b5:00.2\"" in text
    assert dx.lab_vf_bdfs(dx.parse_domain(text)) == ["0000:76:00.1", "0000:b5:00.2"]


def test_set_lab_vfs_adds_metadata_and_an_empty_list_removes_what_it_added():
    root = dx.parse_domain("<domain type='test'><name>x</name><memory>1024</memory><devices/></domain>")
    assert dx.set_lab_vfs(root, ["75:00.2"]) == {"added": ["0000:75:00.2"], "removed": []}
    assert [child.tag for child in root] == ["name", "metadata", "memory", "devices"]
    assert dx.set_lab_vfs(root, []) == {"added": [], "removed": ["0000:75:00.2"]}
    assert root.find("metadata") is None
    assert dx.same_xml(dx.without_lab_vfs(HELD), dx.without_lab_vfs(HELD.replace("75:00.1'/>", "75:00.1'/><kae:vf address='0000:75:00.4'/>")))


def test_the_fragment_is_what_set_metadata_takes():
    fragment = ET.fromstring(dx.lab_vfs_fragment(["0000:76:00.1", "0000:75:00.1"]))
    # libvirt puts the element and its children into the namespace it is given along with the text.
    assert fragment.tag == "vfs" and [vf.tag for vf in fragment] == ["vf", "vf"]
    assert [vf.get("address") for vf in fragment] == ["0000:75:00.1", "0000:76:00.1"]


def test_only_a_marked_tree_is_a_lab_tree(tmp_path):
    marked, plain = str(tmp_path / "marked"), str(tmp_path / "plain")
    simsysfs.build(marked, vfs=1, lab_marker=True)
    simsysfs.build(plain, vfs=1)
    assert _devices.is_lab_tree(Sysfs(marked)) is True
    assert _devices.is_lab_tree(Sysfs(plain)) is False
    # The kernel's own sysfs is never a lab tree, whatever it holds.
    assert _devices.is_lab_tree(Sysfs("/sys")) is False
