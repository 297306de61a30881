# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.filter.select_vfs import FilterModule
from ansible_collections.openeuler.kae.plugins.module_utils import _devices
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs

select_vfs = FilterModule().filters()["select_vfs"]


def test_selects_one_of_each_on_the_preferred_node(kae_host):
    devices = _devices.scan(Sysfs(kae_host(vfs=2)))
    chosen = select_vfs(devices, prefer_node=2)
    assert [(d["engine"], d["bdf"]) for d in chosen] == [("zip", "0000:b5:00.1"), ("hpre", "0000:b9:00.1"), ("sec", "0000:b6:00.1")]
    assert [d["bdf"] for d in select_vfs(devices, request={"sec": 2})] == ["0000:76:00.1", "0000:76:00.2"]


def test_node_without_hpre_and_busy_vfs(kae_host):
    devices = _devices.scan(Sysfs(kae_host(vfs=1, without=[("hpre", 2)])))
    _devices.assign_domains(devices, {"0000:79:00.1": "guest1"})
    with pytest.raises(AnsibleFilterError) as err:
        select_vfs(devices, prefer_node=2)
    assert str(err.value) == (
        "openeuler.kae.select_vfs: no NUMA node has 1 zip, 1 hpre, 1 sec free VFs (unassigned, on hisi_acc_vfio_pci or vfio-pci, "
        "migratable hardware): node 2 lacks hpre (0 free of 1 wanted); node 0 lacks hpre (0 free of 1 wanted)")


def test_old_hardware_has_nothing_to_offer(kae_host):
    devices = _devices.scan(Sysfs(kae_host(vfs=1, revision="0x21")))
    with pytest.raises(AnsibleFilterError, match="node 0 lacks zip \\(0 free of 1 wanted\\), hpre .*, sec"):
        select_vfs(devices)


@pytest.mark.parametrize("kwargs, message", [
    ({"prefer_node": "0"}, "openeuler.kae.select_vfs: prefer_node must be a NUMA node number such as 0, got '0'; pass an int"),
    ({"prefer_node": True}, "prefer_node must be a NUMA node number such as 0, got True"),
    ({"request": {"aes": 1}}, "openeuler.kae.select_vfs: request names engine 'aes'; known engines are zip, sec, hpre"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        select_vfs([], **kwargs)


def test_bad_input():
    with pytest.raises(AnsibleFilterError, match="openeuler.kae.select_vfs: expected the device list of openeuler.kae.device_info"):
        select_vfs("0000:75:00.1")
