# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _sysfs
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs, SysfsError, wait_for


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "devices/pci0/0000:75:00.0").mkdir(parents=True)
    (tmp_path / "devices/pci0/0000:75:00.0/vendor").write_text("0x19e5\n")
    (tmp_path / "devices/pci0/0000:75:00.0/numa_node").write_text("2\n")
    (tmp_path / "bus/pci/devices").mkdir(parents=True)
    os.symlink("../../../devices/pci0/0000:75:00.0", tmp_path / "bus/pci/devices/0000:75:00.0")
    # An absolute link, as in a copied tree: it must resolve inside the root, not on the machine's /sys.
    os.symlink("/devices/pci0/0000:75:00.0", tmp_path / "bus/pci/devices/abs")
    os.symlink("../../../nowhere", tmp_path / "bus/pci/devices/dangling")
    return Sysfs(str(tmp_path))


def test_resolve_follows_relative_and_root_relative_links(tree):
    assert tree.resolve("bus/pci/devices/0000:75:00.0") == "devices/pci0/0000:75:00.0"
    assert tree.resolve("bus/pci/devices/abs/vendor") == "devices/pci0/0000:75:00.0/vendor"
    assert tree.resolve("/bus/pci/devices/0000:75:00.0/../..") == "devices"


def test_resolve_missing_and_dangling_are_none(tree):
    assert tree.resolve("bus/pci/devices/0000:99:00.0") is None
    assert tree.resolve("bus/pci/devices/dangling") is None


def test_resolve_gives_up_on_link_loops(tree):
    os.symlink("loop", tree.path("loop"))
    assert tree.resolve("loop") is None


def test_read_strips_and_missing_reads_none(tree):
    assert tree.read("devices/pci0/0000:75:00.0/vendor") == "0x19e5"
    assert tree.read_int("devices/pci0/0000:75:00.0/numa_node") == 2
    assert tree.read_int("devices/pci0/0000:75:00.0/vendor", 16) == 0x19E5
    assert tree.read_int("devices/pci0/0000:75:00.0/vendor") is None
    assert tree.read("devices/pci0/0000:75:00.0/gone") is None
    assert tree.read("devices/pci0/0000:75:00.0/vendor/below-a-file") is None
    assert tree.read("devices/pci0") is None


def test_read_unreadable_raises_with_path(tree, deny_read):
    deny_read("/vendor")
    with pytest.raises(SysfsError, match="cannot read .*vendor: Permission denied"):
        tree.read("devices/pci0/0000:75:00.0/vendor")


def test_link_name_listdir_exists(tree):
    assert tree.link_name("bus/pci/devices/0000:75:00.0") == "0000:75:00.0"
    assert tree.link_name("devices/pci0/0000:75:00.0/vendor") is None
    assert tree.listdir("bus/pci/devices") == ["0000:75:00.0", "abs", "dangling"]
    assert tree.listdir("bus/pci/nothing") == []
    assert tree.exists("bus/pci/devices/dangling") and not tree.exists("bus/pci/devices/x")


def test_write_replaces_the_value_through_links(tree):
    tree.write("bus/pci/devices/0000:75:00.0/numa_node", 0)
    assert tree.read_int("devices/pci0/0000:75:00.0/numa_node") == 0
    tree.write("devices/pci0/0000:75:00.0/numa_node", 12)
    tree.write("devices/pci0/0000:75:00.0/numa_node", 3)
    assert tree.read("devices/pci0/0000:75:00.0/numa_node") == "3"


@pytest.mark.parametrize("rel", ["nodir/sriov_numvfs", "devices/pci0/0000:75:00.0/sriov_numvfs", "bus/pci/devices/dangling"])
def test_write_never_creates_a_file(tree, rel):
    with pytest.raises(SysfsError, match=r"^cannot write '4' to %s: no such attribute \(it is never created\)$" % tree.path(rel)):
        tree.write(rel, 4)
    assert not os.path.exists(tree.path(rel))
    assert not os.path.exists(os.path.join(os.path.dirname(tree.root), "nowhere"))


# ---------------------------------------------------------------- nothing outside the root

@pytest.fixture
def escaping(tmp_path):
    """A tree whose links lead out of it (to a file beside the root) in the ways a crafted tree could."""
    root = tmp_path / "sysfs"
    (root / "bus/pci/devices").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sriov_numvfs").write_text("secret\n")
    os.symlink("../../../../outside", root / "bus/pci/devices/0000:75:00.0")
    os.symlink("../../../../outside/sriov_numvfs", root / "bus/pci/devices/numvfs")
    return Sysfs(str(root)), outside


@pytest.mark.parametrize("rel", [
    "bus/pci/devices/0000:75:00.0/sriov_numvfs",   # a directory link leaving the root
    "bus/pci/devices/numvfs",                      # a file link leaving the root
    "../outside/sriov_numvfs",                     # '..' above the root
    "bus/../../outside/sriov_numvfs",
])
def test_nothing_outside_the_root_is_read_or_written(escaping, rel):
    sysfs, outside = escaping
    for action in (lambda: sysfs.read(rel), lambda: sysfs.write(rel, 0), lambda: sysfs.read_int(rel),
                   lambda: sysfs.listdir(rel + "/.."), lambda: sysfs.exists(rel + "/x"), lambda: sysfs.link_name(rel + "/x")):
        with pytest.raises(SysfsError, match=r"leads outside the sysfs tree %s \(a symlink or '\.\.' leaves it\); refusing" % sysfs.root):
            action()
    assert (outside / "sriov_numvfs").read_text() == "secret\n"


@pytest.mark.parametrize("call", [
    lambda s: s.read("devices/pci0\x00/vendor"),
    lambda s: s.write("devices/pci0/0000:75:00.0/numa_node", "1\x00"),
    lambda s: s.write("devices/pci0/0000:75:00.0/numa_node", "\u0662"),
    lambda s: s.exists("bus\x00"),
    lambda s: Sysfs("/sys\x00"),
])
def test_nul_bytes_and_non_ascii_values_are_refused(tree, call):
    with pytest.raises(SysfsError, match="NUL byte|printable ASCII"):
        call(tree)
    assert tree.read_int("devices/pci0/0000:75:00.0/numa_node") == 2


@pytest.mark.parametrize("text, base, expected", [
    ("12", 10, 12), ("-1", 10, -1), ("0x30", 16, 0x30), ("a259", 16, 0xA259),
    ("\u0664", 10, None), ("1\u0662", 10, None), ("1e3", 10, None), ("", 10, None), (None, 10, None), ("9" * 40, 10, None),
])
def test_ascii_int(text, base, expected):
    assert _sysfs.ascii_int(text, base) == expected


def test_read_int_takes_ascii_digits_only_and_reads_at_most_a_page(tree):
    (Path(tree.root) / "devices/pci0/0000:75:00.0/numa_node").write_text("\u0664\n")
    assert tree.read_int("devices/pci0/0000:75:00.0/numa_node") is None
    (Path(tree.root) / "devices/pci0/big").write_text("x" * 200000)
    assert len(tree.read("devices/pci0/big")) == 65536


def test_wait_for_returns_as_soon_as_true_and_gives_up():
    calls = []
    assert wait_for(lambda: calls.append(1) or len(calls) == 3, timeout_s=5, interval=0) is True
    assert len(calls) == 3
    assert wait_for(lambda: False, timeout_s=0) is False
