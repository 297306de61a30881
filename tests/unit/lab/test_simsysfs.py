# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulated Kunpeng 920 tree and its kernel player (lab/simsysfs.py)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.openeuler.kae.lab import simsysfs


def write(root, rel, text):
    with open(os.path.join(root, rel), "w") as handle:
        handle.write(text)


def virtfns(root, pf):
    return sorted(n for n in os.listdir(os.path.join(root, "bus/pci/devices", pf)) if n.startswith("virtfn"))


def driver(root, bdf):
    link = os.path.join(root, "bus/pci/devices", bdf, "driver")
    return os.path.basename(os.readlink(link)) if os.path.lexists(link) else None


@pytest.fixture
def root(tmp_path):
    path = str(tmp_path / "sysfs")
    simsysfs.build(path, vfs=2)
    return path


def test_build_layout(tmp_path):
    pfs = simsysfs.build(str(tmp_path / "s"), vfs=0, without=[("hpre", 2)], pf_drivers={("sec", 0): None})
    assert pfs == {("zip", 0): "0000:75:00.0", ("sec", 0): "0000:76:00.0", ("hpre", 0): "0000:79:00.0",
                   ("zip", 2): "0000:b5:00.0", ("sec", 2): "0000:b6:00.0"}
    root = str(tmp_path / "s")
    assert sorted(os.listdir(os.path.join(root, "devices/system/node"))) == ["node0", "node1", "node2", "node3"]
    assert os.path.realpath(os.path.join(root, "bus/pci/devices/0000:b5:00.0")).endswith("/devices/pci0000:b4/0000:b4:00.0/0000:b5:00.0")
    assert driver(root, "0000:76:00.0") is None and driver(root, "0000:75:00.0") == "hisi_zip"


@pytest.mark.parametrize("kwargs, message", [
    ({"layout": "kunpeng930"}, "unknown layout 'kunpeng930'; known layouts: kunpeng920"),
    ({"migration_driver": "vfio"}, "migration_driver must be one of hisi_acc_vfio_pci, vfio-pci or None, got 'vfio'"),
])
def test_build_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        simsysfs.build(str(tmp_path / "s"), **kwargs)


def test_build_refuses_a_non_empty_root(root):
    with pytest.raises(ValueError, match="is not empty; remove it first"):
        simsysfs.build(root)


def test_player_refuses_m_to_n_and_more_than_total(root):
    write(root, "bus/pci/devices/0000:75:00.0/sriov_numvfs", "3")
    write(root, "bus/pci/devices/0000:76:00.0/sriov_numvfs", "0")
    assert simsysfs.play(root) == ["0000:75:00.0: refused sriov_numvfs 3", "0000:76:00.0: disabled 2 VFs"]
    assert len(virtfns(root, "0000:75:00.0")) == 2 and virtfns(root, "0000:76:00.0") == []
    assert open(os.path.join(root, "bus/pci/devices/0000:75:00.0/sriov_numvfs")).read().strip() == "2"
    write(root, "bus/pci/devices/0000:76:00.0/sriov_numvfs", "64")
    assert simsysfs.play(root) == ["0000:76:00.0: refused sriov_numvfs 64"]
    assert "cannot enable 64 VFs: more than sriov_totalvfs 63" in open(os.path.join(root, "dmesg")).read()
    assert simsysfs.play(root) == []


def test_player_binds_as_the_kernel(root):
    vf = "0000:75:00.1"
    write(root, "bus/pci/drivers/hisi_acc_vfio_pci/unbind", vf)
    assert simsysfs.play(root) == [vf + ": unbound from hisi_acc_vfio_pci"]
    # driver_override restricts which driver may bind.
    write(root, "bus/pci/devices/%s/driver_override" % vf, "vfio-pci")
    write(root, "bus/pci/drivers/hisi_zip/bind", vf)
    assert simsysfs.play(root) == [] and driver(root, vf) is None
    write(root, "bus/pci/drivers_probe", vf)
    assert simsysfs.play(root) == [vf + ": probed, driver vfio-pci"]
    write(root, "bus/pci/drivers/vfio-pci/unbind", vf)
    write(root, "bus/pci/devices/%s/driver_override" % vf, "(null)")
    write(root, "bus/pci/drivers/hisi_zip/bind", vf)
    assert simsysfs.play(root) == [vf + ": unbound from vfio-pci", vf + ": bound to hisi_zip"]


def test_new_vfs_autoprobe_to_the_host_driver(root):
    write(root, "bus/pci/devices/0000:79:00.0/sriov_numvfs", "0")
    simsysfs.play(root)
    write(root, "bus/pci/devices/0000:79:00.0/sriov_numvfs", "1")
    assert simsysfs.play(root) == ["0000:79:00.0: enabled 1 VFs"]
    assert driver(root, "0000:79:00.1") == "hisi_hpre"
    assert not os.path.lexists(os.path.join(root, "bus/pci/devices/0000:79:00.2"))


def test_cli_build_and_play_once(tmp_path, capsys):
    root = str(tmp_path / "c")
    assert simsysfs.main(["build", root, "--vfs", "1", "--migration-driver", "vfio-pci"]) == 0
    assert "zip node 0: PF 0000:75:00.0" in capsys.readouterr().out
    assert os.path.isdir(os.path.join(root, "module/hisi_migration"))
    assert driver(root, "0000:75:00.1") == "vfio-pci"
    write(root, "bus/pci/devices/0000:75:00.0/sriov_numvfs", "0")
    assert simsysfs.main(["play", "--once", root]) == 0
    assert capsys.readouterr().out == "%s: 0000:75:00.0: disabled 1 VFs\n" % root
    simsysfs.serve([root, str(tmp_path / "missing")], interval=0, passes=2)


def test_without_autoprobe_new_vfs_stay_unbound_until_an_override_names_a_driver(root):
    pf = "0000:79:00.0"
    write(root, "bus/pci/devices/%s/sriov_numvfs" % pf, "0")
    simsysfs.play(root)
    write(root, "bus/pci/devices/%s/sriov_drivers_autoprobe" % pf, "0")
    write(root, "bus/pci/devices/%s/sriov_numvfs" % pf, "1")
    assert simsysfs.play(root) == [pf + ": enabled 1 VFs"]
    vf = "0000:79:00.1"
    assert driver(root, vf) is None
    # As in the kernel (pci_device_can_probe): such a VF binds to nothing, not even on request, without driver_override.
    write(root, "bus/pci/drivers_probe", vf)
    write(root, "bus/pci/drivers/hisi_hpre/bind", vf)
    assert simsysfs.play(root) == [vf + ": probed, driver None"] and driver(root, vf) is None
    write(root, "bus/pci/devices/%s/driver_override" % vf, "hisi_acc_vfio_pci")
    write(root, "bus/pci/drivers_probe", vf)
    assert simsysfs.play(root) == [vf + ": probed, driver hisi_acc_vfio_pci"]
    # Turning autoprobe back on binds nothing that exists already.
    write(root, "bus/pci/devices/%s/sriov_drivers_autoprobe" % pf, "1")
    assert simsysfs.play(root) == []


def test_player_ignores_a_count_it_cannot_read(root):
    write(root, "bus/pci/devices/0000:75:00.0/sriov_numvfs", "\u0663")
    assert simsysfs.play(root) == []
    assert len(virtfns(root, "0000:75:00.0")) == 2
