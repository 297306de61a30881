# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

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
    # ".." never climbs above the root.
    assert tree.resolve("../../devices/./pci0") == "devices/pci0"


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


def test_read_unreadable_raises_with_path(tree, monkeypatch):
    def denied(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(SysfsError, match="cannot read .*vendor: Permission denied"):
        tree.read("devices/pci0/0000:75:00.0/vendor")


def test_link_name_listdir_exists(tree):
    assert tree.link_name("bus/pci/devices/0000:75:00.0") == "0000:75:00.0"
    assert tree.link_name("devices/pci0/0000:75:00.0/vendor") is None
    assert tree.listdir("bus/pci/devices") == ["0000:75:00.0", "abs", "dangling"]
    assert tree.listdir("bus/pci/nothing") == []
    assert tree.exists("bus/pci/devices/dangling") and not tree.exists("bus/pci/devices/x")


def test_write_and_write_error_names_path(tree):
    tree.write("devices/pci0/0000:75:00.0/numa_node", 0)
    assert tree.read_int("devices/pci0/0000:75:00.0/numa_node") == 0
    with pytest.raises(SysfsError, match=r"cannot write '4' to .*/nodir/sriov_numvfs: No such file or directory"):
        tree.write("nodir/sriov_numvfs", 4)


def test_wait_for_returns_as_soon_as_true_and_gives_up():
    calls = []
    assert wait_for(lambda: calls.append(1) or len(calls) == 3, timeout_s=5, interval=0) is True
    assert len(calls) == 3
    assert wait_for(lambda: False, timeout_s=0) is False
