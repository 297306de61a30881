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
    assert "host_lab: the KAE devices of kae-lab-a are simulated" in first.stdout
    assert "the live kernel.printk is this machine's own kernel setting and is left alone" in first.stdout

    second = ansible_playbook(host_play)
    assert second.returncode == 0, second.stdout + second.stderr
    assert {host: counts["changed"] for host, counts in recap(second.stdout).items()} == {"kae-lab-a": 0, "kae-lab-b": 0}

    for host in lab.hosts:
        root = lab.kaelab.STATE / "hosts" / host / "sysfs"
        reported = json.loads((tmp_path / ("inventory-%s.json" % host)).read_text())
        # What the role saw on the host over ssh is what the tree holds, read here on the controller.
        expected = _devices.scan(Sysfs(str(root)))
        # Lab guests hold the VFs the guest role recorded in their <metadata><kae:vfs> (the lab's trees are marked).
        owners, note = _devices.hostdev_owners(lab.libvirt_uri(host), lab=True)
        assert note["available"] is True, note
        _devices.assign_domains(expected, owners)
        assert reported["devices"] == expected and reported["lab"] is True
        assert reported["sysfs_root"] == str(root)
        assert reported["libvirt"]["available"] is True, reported["libvirt"]
        assert reported["migration_drivers"] == ["hisi_acc_vfio_pci"]
        assert reported["pf_q_num"] == {"zip": 64, "sec": 64, "hpre": 64}
        for engine in ("zip", "sec", "hpre"):
            held = sum(1 for d in expected if d["engine"] == engine and d["function"] == "vf" and d["domains"])
            assert reported["engines"][engine] == {"pfs": 2, "vfs": 8, "free_vfs": 8 - held, "numa_nodes": [0, 2]}
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


def tree_vars(host_play, trees, **extra):
    """An extra-vars argument pointing each host's role at its own tree (the lab's shared trees stay as they are)."""
    vars_file = os.path.join(os.path.dirname(host_play), "trees.yml")
    with open(vars_file, "w") as handle:
        json.dump(dict({"test_trees": trees, "host_sysfs_root": "{{ test_trees[inventory_hostname] }}", "host_num_vfs": 3}, **extra), handle)
    return "@" + vars_file


def test_host_role_provisions_and_rebinds_vfs(lab, ansible_playbook, host_play, fresh_trees):
    extra_vars = tree_vars(host_play, fresh_trees)
    first = ansible_playbook(host_play, "-e", extra_vars)
    assert first.returncode == 0, first.stdout + first.stderr
    assert {host: counts["changed"] > 0 for host, counts in recap(first.stdout).items()} == {"kae-lab-a": True, "kae-lab-b": True}
    for tree in fresh_trees.values():
        devices = _devices.scan(Sysfs(tree))
        vfs = [d for d in devices if d["function"] == "vf"]
        assert len(vfs) == 18 and {d["driver"] for d in vfs} == {"vfio-pci"}
        assert all(d["sriov_numvfs"] == 3 for d in devices if d["function"] == "pf")
        log = open(os.path.join(tree, "dmesg")).read()
        assert "0000:75:00.0: disabled 2 VFs" in log and "0000:75:00.0: enabled 3 VFs" in log
    second = ansible_playbook(host_play, "-e", extra_vars)
    assert second.returncode == 0, second.stdout + second.stderr
    assert {host: counts["changed"] for host, counts in recap(second.stdout).items()} == {"kae-lab-a": 0, "kae-lab-b": 0}


# ---------------------------------------------------------------- refusals: a VF a domain may hold is never touched

HOLDER = "kae-vf-holder"
HELD_VF = "0000:75:00.2"
# Defined, never started: the lab has no device to pass through, but libvirt keeps the definition, and a
# definition is enough to hold a VF.
HOLDER_XML = """<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <hostdev mode='subsystem' type='pci' managed='no'>
      <driver name='vfio'/>
      <source><address domain='0x0000' bus='0x75' slot='0x00' function='0x2'/></source>
    </hostdev>
  </devices>
</domain>
""" % HOLDER
UNREACHABLE_URI = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"


def tree_snapshot(tree):
    """What a refusal must leave as it is: every function's driver and override, the autoprobe flags, the kernel log."""
    sysfs = Sysfs(tree)
    devices = _devices.scan(sysfs)
    state = [(d["bdf"], d["driver"], sysfs.read("bus/pci/devices/%s/driver_override" % d["bdf"]),
              sysfs.read("bus/pci/devices/%s/sriov_drivers_autoprobe" % d["bdf"])) for d in devices]
    dmesg = os.path.join(tree, "dmesg")
    return state, open(dmesg).read() if os.path.exists(dmesg) else ""


@pytest.fixture
def holder(conns):
    """A domain defined on kae-lab-a whose hostdev names the simulated VF 0000:75:00.2; undefined afterwards."""
    conn = conns["kae-lab-a"]
    conn.defineXML(HOLDER_XML)
    yield conn
    for dom in conn.listAllDomains(0):
        if dom.name() == HOLDER:
            dom.undefine()


def on_lab_a(ansible_adhoc, module, module_args):
    """(return code, the module's result) of an ad-hoc MODULE on kae-lab-a."""
    run = ansible_adhoc("kae-lab-a", module, module_args)
    assert "=>" in run.stdout, run.stdout + run.stderr
    return run.returncode, json.loads(run.stdout[run.stdout.index("=>") + 2:])


def sriov(ansible_adhoc, tree, num_vfs):
    return on_lab_a(ansible_adhoc, "openeuler.kae.sriov", "pf=0000:75:00.0 num_vfs=%d driver=vfio-pci sysfs_root=%s" % (num_vfs, tree))


def test_sriov_never_touches_the_vfs_of_a_defined_domain(lab, holder, ansible_adhoc, fresh_trees):
    tree = fresh_trees["kae-lab-a"]
    before = tree_snapshot(tree)
    rc, facts = on_lab_a(ansible_adhoc, "openeuler.kae.device_info", "sysfs_root=%s" % tree)
    assert rc == 0, facts
    held = dict((d["bdf"], d["domains"]) for d in facts["devices"] if d["function"] == "vf" and d["domains"])
    assert held == {HELD_VF: [HOLDER]} and facts["engines"]["zip"]["free_vfs"] == 0   # the others sit on hisi_zip

    # Only the driver differs (hisi_zip -> vfio-pci): rebinding would unbind the held VF.
    rc, rebind = sriov(ansible_adhoc, tree, 2)
    assert rc == 2 and rebind["msg"] == (
        "cannot rebind 0000:75:00.1, 0000:75:00.2 to vfio-pci of PF 0000:75:00.0: VF %s is held by libvirt domain %s; "
        "detach the VFs from those domains (or move the guests) first. Nothing was changed" % (HELD_VF, HOLDER)), rebind
    # A count change would remove it.
    rc, recount = sriov(ansible_adhoc, tree, 3)
    assert rc == 2 and recount["msg"].startswith(
        "cannot change the VF count from 2 to 3, which removes every VF of PF 0000:75:00.0: VF %s is held by libvirt domain %s;"
        % (HELD_VF, HOLDER)), recount
    assert tree_snapshot(tree) == before

    # The domain was the reason: without it the same change goes through (new VFs never on hisi_zip first).
    holder.lookupByName(HOLDER).undefine()
    rc, done = sriov(ansible_adhoc, tree, 3)
    assert rc == 0 and done["changed"] is True, done
    state = _devices.vf_state(Sysfs(tree), "0000:75:00.0")
    assert state == {"num_vfs": 3, "vfs": {"0000:75:00.%d" % n: "vfio-pci" for n in range(1, 4)}}
    log = open(os.path.join(tree, "dmesg")).read()
    assert "0000:75:00.0: enabled 3 VFs" in log and "0000:75:00.3: unbound from hisi_zip" not in log


def test_host_role_refuses_to_provision_when_libvirt_cannot_be_asked(lab, ansible_playbook, host_play, fresh_trees):
    before = {host: tree_snapshot(tree) for host, tree in fresh_trees.items()}
    run = ansible_playbook(host_play, "-e", tree_vars(host_play, fresh_trees, host_libvirt_uri=UNREACHABLE_URI))
    assert run.returncode == 2, run.stdout + run.stderr
    for host in fresh_trees:
        assert "VF ownership could not be read on %s (cannot connect to libvirt at %s" % (host, UNREACHABLE_URI) in run.stdout
    assert "the role changes no VF while a domain might hold one. Start libvirtd or set host_libvirt_uri" in run.stdout
    assert "TASK [openeuler.kae.host : Provision the VFs of each PF]" not in run.stdout
    assert {host: counts["failed"] for host, counts in recap(run.stdout).items()} == {"kae-lab-a": 1, "kae-lab-b": 1}
    assert {host: tree_snapshot(tree) for host, tree in fresh_trees.items()} == before
