# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.filter.device_parity import FilterModule
from ansible_collections.openeuler.kae.plugins.modules import device_info

device_parity = FilterModule().filters()["device_parity"]


def gather(root, uri):
    return device_info.gather(root, uri)


def test_matching_hosts_have_no_mismatch(kae_host, empty_uri):
    src = gather(kae_host(), empty_uri)
    dst = gather(kae_host(), empty_uri)
    assert device_parity(src, dst) == []


def test_mismatches_name_the_pf_and_both_values(kae_host, empty_uri):
    src = gather(kae_host(vfs=4), empty_uri)
    dst = gather(kae_host(vfs=3, pf_q_num=128, without=[("zip", 2)]), empty_uri)
    assert device_parity(src, dst) == [
        "pf_q_num of hpre differs: source 64, destination 128 (load hisi_hpre with the same pf_q_num on both)",
        "pf_q_num of sec differs: source 64, destination 128 (load hisi_sec2 with the same pf_q_num on both)",
        "pf_q_num of zip differs: source 64, destination 128 (load hisi_zip with the same pf_q_num on both)",
        "PF 0000:75:00.0: sriov_numvfs differs: source 4, destination 3",
        "PF 0000:76:00.0: sriov_numvfs differs: source 4, destination 3",
        "PF 0000:79:00.0: sriov_numvfs differs: source 4, destination 3",
        "PF 0000:b5:00.0 (zip, node 2) exists on the source but not on the destination",
        "PF 0000:b6:00.0: sriov_numvfs differs: source 4, destination 3",
        "PF 0000:b9:00.0: sriov_numvfs differs: source 4, destination 3",
    ]


def test_device_lists_compare_without_pf_q_num(kae_host, empty_uri):
    src = gather(kae_host(pf_q_num=64), empty_uri)
    dst = gather(kae_host(pf_q_num=128), empty_uri)
    assert device_parity(src["devices"], dst["devices"]) == []


def test_bad_input_names_the_filter_and_fix():
    with pytest.raises(AnsibleFilterError) as err:
        device_parity({"failed": True}, [])
    assert str(err.value) == ("openeuler.kae.device_parity: the source facts: expected the device list of openeuler.kae.device_info "
                              "(its 'devices'), got dict; pass each host's registered device_info result (or its devices list)")


PF = {"bdf": "0000:75:00.0", "engine": "zip", "function": "pf", "numa_node": 0, "revision": "0x30", "sriov_numvfs": 4}


@pytest.mark.parametrize("source, message", [
    ([dict(PF, numa_node="0")], r"the source facts: devices\[0\].numa_node must be a whole number, got str '0'"),
    ([dict(PF, sriov_numvfs="4")], r"the source facts: devices\[0\].sriov_numvfs must be a whole number, got str '4'"),
    ([dict(PF, bdf="0000:75:00.0\x00")], r"the source facts: devices\[0\].bdf must not contain a NUL byte"),
    ([{"bdf": "0000:75:00.0"}], r"the source facts: devices\[0\] lacks 'engine', 'function', 'numa_node'"),
    ([dict(PF, engine=None)], r"the source facts: devices\[0\].engine must be one of zip, sec, hpre, got NoneType None"),
    ({"devices": [PF], "pf_q_num": {"zip": "64"}}, r"the source facts: pf_q_num\['zip'\] must be a whole number, got str '64'"),
    ({"devices": [PF], "pf_q_num": {"zip": float("nan")}}, r"the source facts: pf_q_num\['zip'\] must be a whole number, got float nan"),
    ({"devices": "none"}, r"the source facts: expected the device list of openeuler.kae.device_info \(its 'devices'\), got str"),
])
def test_bad_facts_are_a_sentence(source, message):
    with pytest.raises(AnsibleFilterError, match="^openeuler.kae.device_parity: " + message):
        device_parity(source, [PF])
