# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The openeuler.kae.host role against the lab hosts' simulated KAE trees, run by ansible-playbook."""

from __future__ import annotations

import json
import os
import re
import threading

import pytest

from ansible_collections.openeuler.kae.lab import simsysfs
from ansible_collections.openeuler.kae.plugins.module_utils import _devices
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs

PLAY = """
- name: Prepare the hypervisors
  hosts: kae_hypervisors
  gather_facts: false
  roles:
    - role: openeuler.kae.host
  tasks:
    - name: Keep what the role reported
      ansible.builtin.copy:
        content: "{{ host_kae | to_json }}"
        dest: "{{ playbook_dir }}/inventory-{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
      changed_when: false

    - name: Keep the parity between the two hosts
      ansible.builtin.copy:
        content: "{{ hostvars['kae-lab-a'].host_kae | openeuler.kae.device_parity(hostvars['kae-lab-b'].host_kae) | to_json }}"
        dest: "{{ playbook_dir }}/parity.json"
        mode: "0644"
      delegate_to: localhost
      run_once: true
      changed_when: false
"""


def recap(stdout):
    """{host: {ok, changed, failed, ...}} from the PLAY RECAP."""
    hosts = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", stdout, re.M):
        hosts[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counts)}
    return hosts


@pytest.fixture
def host_play(tmp_path):
    playbook = tmp_path / "host.yml"
    playbook.write_text(PLAY)
    return str(playbook)


def test_host_role_reports_the_simulated_inventory_and_is_idempotent(lab, ansible_playbook, host_play, tmp_path):
    first = ansible_playbook(host_play)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "kae_lab: the KAE devices of kae-lab-a are simulated" in first.stdout
    assert "the live kernel.printk is this machine's own kernel setting and is left alone" in first.stdout

    second = ansible_playbook(host_play)
    assert second.returncode == 0, second.stdout + second.stderr
    assert {host: counts["changed"] for host, counts in recap(second.stdout).items()} == {"kae-lab-a": 0, "kae-lab-b": 0}

    for host in lab.hosts:
        root = lab.kaelab.STATE / "hosts" / host / "sysfs"
        reported = json.loads((tmp_path / ("inventory-%s.json" % host)).read_text())
        # What the role saw on the host over ssh is what the tree holds, read here on the controller.
        expected = _devices.scan(Sysfs(str(root)))
        _devices.assign_domains(expected, {})
        assert reported["devices"] == expected
        assert reported["sysfs_root"] == str(root)
        assert reported["libvirt"]["available"] is True, reported["libvirt"]
        assert reported["migration_drivers"] == ["hisi_acc_vfio_pci"]
        assert reported["pf_q_num"] == {"zip": 64, "sec": 64, "hpre": 64}
        for engine in ("zip", "sec", "hpre"):
            assert reported["engines"][engine] == {"pfs": 2, "vfs": 8, "free_vfs": 8, "numa_nodes": [0, 2]}
        etc = lab.kaelab.STATE / "hosts" / host / "etc"
        assert "options hisi_zip uacce_mode=1 pf_q_num=64 vfs_num=0" in (etc / "modprobe.d" / "kae.conf").read_text()
        assert "kernel.printk = 4 4 1 7" in (etc / "sysctl.d" / "90-kae-printk.conf").read_text()
    assert json.loads((tmp_path / "parity.json").read_text()) == []


@pytest.fixture
def fresh_trees(lab, tmp_path):
    """A new simulated tree per lab host (openEuler 22.03 style, 2 VFs per PF), with a kernel player running."""
    trees = {}
    for host in lab.hosts:
        trees[host] = str(tmp_path / host / "sysfs")
        simsysfs.build(trees[host], vfs=2, migration_driver="vfio-pci", vf_driver="hisi_zip")
    stop = threading.Event()
    player = threading.Thread(target=simsysfs.serve, args=(list(trees.values()), 0.02), kwargs={"stop": stop}, daemon=True)
    player.start()
    yield trees
    stop.set()
    player.join(timeout=5)


def test_host_role_provisions_and_rebinds_vfs(lab, ansible_playbook, host_play, fresh_trees):
    # Each host gets its own tree; the lab's shared trees stay as they are.
    vars_file = os.path.join(os.path.dirname(host_play), "trees.yml")
    with open(vars_file, "w") as handle:
        json.dump({"test_trees": fresh_trees, "host_sysfs_root": "{{ test_trees[inventory_hostname] }}", "host_num_vfs": 3}, handle)
    first = ansible_playbook(host_play, "-e", "@" + vars_file)
    assert first.returncode == 0, first.stdout + first.stderr
    assert {host: counts["changed"] > 0 for host, counts in recap(first.stdout).items()} == {"kae-lab-a": True, "kae-lab-b": True}
    for tree in fresh_trees.values():
        devices = _devices.scan(Sysfs(tree))
        vfs = [d for d in devices if d["function"] == "vf"]
        assert len(vfs) == 18 and {d["driver"] for d in vfs} == {"vfio-pci"}
        assert all(d["sriov_numvfs"] == 3 for d in devices if d["function"] == "pf")
        log = open(os.path.join(tree, "dmesg")).read()
        assert "0000:75:00.0: disabled 2 VFs" in log and "0000:75:00.0: enabled 3 VFs" in log
    second = ansible_playbook(host_play, "-e", "@" + vars_file)
    assert second.returncode == 0, second.stdout + second.stderr
    assert {host: counts["changed"] for host, counts in recap(second.stdout).items()} == {"kae-lab-a": 0, "kae-lab-b": 0}
