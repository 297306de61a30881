# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.filter.select_vfs import FilterModule
from ansible_collections.openeuler.kae.plugins.module_utils import _devices
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs
from ansible_collections.openeuler.kae.plugins.modules import device_info

select_vfs = FilterModule().filters()["select_vfs"]


def known(root, owners=None):
    """The tree's devices with libvirt's answer OWNERS ({bdf: [domains]}, default: no VF held)."""
    return _devices.assign_domains(_devices.scan(Sysfs(root)), owners or {})


def test_selects_one_of_each_on_the_preferred_node(kae_host):
    devices = known(kae_host(vfs=2))
    chosen = select_vfs(devices, prefer_node=2)
    assert [(d["engine"], d["bdf"]) for d in chosen] == [("zip", "0000:b5:00.1"), ("hpre", "0000:b9:00.1"), ("sec", "0000:b6:00.1")]
    assert [d["bdf"] for d in select_vfs(devices, request={"sec": 2})] == ["0000:76:00.1", "0000:76:00.2"]


def test_node_without_hpre_and_busy_vfs(kae_host):
    devices = known(kae_host(vfs=1, without=[("hpre", 2)]), {"0000:79:00.1": ["guest1"]})
    with pytest.raises(AnsibleFilterError) as err:
        select_vfs(devices, prefer_node=2)
    assert str(err.value) == (
        "openeuler.kae.select_vfs: no NUMA node has 1 zip, 1 hpre, 1 sec free VFs (unassigned, on hisi_acc_vfio_pci or vfio-pci, "
        "migratable hardware): node 2 lacks hpre (0 free of 1 wanted); node 0 lacks hpre (0 free of 1 wanted)")


def test_old_hardware_has_nothing_to_offer(kae_host):
    devices = known(kae_host(vfs=1, revision="0x21"))
    with pytest.raises(AnsibleFilterError, match="node 0 lacks zip \\(0 free of 1 wanted\\), hpre .*, sec"):
        select_vfs(devices)


# ---------------------------------------------------------------- unknown is not free

def test_refuses_when_device_info_could_not_ask_libvirt(kae_host, unreachable_uri):
    facts = device_info.gather(kae_host(vfs=2), unreachable_uri)
    with pytest.raises(AnsibleFilterError) as err:
        select_vfs(facts["devices"], prefer_node=0)
    message = str(err.value)
    assert message.startswith("openeuler.kae.select_vfs: VF ownership could not be read (cannot connect to libvirt at %s: " % unreachable_uri)
    assert message.endswith("), so 12 VFs may belong to a guest: refusing to choose VFs. Make libvirt reachable (uri) and read "
                            "the devices again with openeuler.kae.device_info")


def test_refuses_a_device_list_that_does_not_say_who_holds_the_vfs(kae_host):
    # Without libvirt's answer (a list put together by hand, or from an older device_info), no VF is free.
    with pytest.raises(AnsibleFilterError, match=r"VF ownership could not be read \(the device facts do not say \(no owner_known\)"):
        select_vfs(_devices.scan(Sysfs(kae_host(vfs=1))))


def test_explicit_assumption_on_a_host_without_libvirt(kae_host, unreachable_uri):
    facts = device_info.gather(kae_host(vfs=1), unreachable_uri, assume_unassigned=True)
    assert device_info.assumption_warning(facts["libvirt"]).startswith("libvirt could not be asked")
    assert [d["bdf"] for d in select_vfs(facts["devices"])] == ["0000:75:00.1", "0000:79:00.1", "0000:76:00.1"]


# ---------------------------------------------------------------- bad input: a sentence, never a traceback

VF = {"bdf": "0000:75:00.1", "engine": "zip", "function": "vf", "numa_node": 0, "driver": "vfio-pci", "domain": None,
      "domains": [], "owner_known": True, "migratable_hw": True}


@pytest.mark.parametrize("devices, kwargs, message", [
    ([VF], {"prefer_node": "0"}, r"prefer_node must be a whole number, got str '0'; pass a NUMA node number such as 0 "
                                 r"\(for example prefer_node=guest_node \| int\)$"),
    ([VF], {"prefer_node": True}, "prefer_node must be a whole number, got bool True"),
    ([VF], {"prefer_node": float("nan")}, "prefer_node must be a whole number, got float nan"),
    ([VF], {"prefer_node": 10 ** 5000}, "prefer_node must be at most 65535, got a 16610-bit number"),
    ([VF], {"prefer_node": -7}, "prefer_node must be at least -1, got -7"),
    ([VF], {"request": {"aes": 1}}, "request names engine 'aes'; known engines are zip, sec, hpre"),
    ([VF], {"request": {"zip": "\u0661"}}, r"request\['zip'\] must be a whole number, got str '\u0661' \(a count of VFs\)"),
    ([VF], {"request": {"zip": 1e309}}, r"request\['zip'\] must be a whole number, got float inf"),
    ([VF], {"request": "zip=1"}, "request must be a non-empty mapping of engine to VF count"),
    ("0000:75:00.1", {}, r"expected the device list of openeuler.kae.device_info \(its 'devices'\), got str"),
    ({"devices": [VF]}, {}, r"expected the device list of openeuler.kae.device_info \(its 'devices'\), got dict"),
    ([VF, None], {}, r"devices\[1\] must be a mapping, got NoneType None; pass the 'devices' of openeuler.kae.device_info"),
    ([dict(VF, numa_node="0")], {}, r"devices\[0\].numa_node must be a whole number, got str '0'"),
    ([dict(VF, numa_node=None)], {}, r"devices\[0\].numa_node must be a whole number, got NoneType None"),
    ([{k: v for k, v in VF.items() if k != "engine"}], {}, r"devices\[0\] lacks 'engine'"),
    ([dict(VF, bdf="0000:75:00.1\x00")], {}, r"devices\[0\].bdf must not contain a NUL byte"),
    ([dict(VF, bdf="../../0000:75:00.1")], {}, r"devices\[0\].bdf must be a PCI address DDDD:BB:SS.F"),
    ([dict(VF, owner_known="true")], {}, r"devices\[0\].owner_known must be true or false, got str"),
])
def test_bad_input_is_a_sentence(devices, kwargs, message):
    with pytest.raises(AnsibleFilterError, match="^openeuler.kae.select_vfs: " + message):
        select_vfs(devices, **kwargs)
