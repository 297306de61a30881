# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The guest role choosing VFs for several guests of one host, run by ansible-playbook on this machine.

Each inventory host is this machine (local connection) with its own simulated Kunpeng 920 sysfs tree and its own
libvirt test-driver node file (guests defined there, holding nothing). The hostdevs are rendered and predicted but
not defined, as in the lab; what each guest got is written to a file by the play.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ansible_collections.openeuler.kae.lab import simsysfs

pytest.importorskip("libvirt")

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = """\
- name: Guests of one host
  hosts: all
  gather_facts: false
  roles:
    - role: openeuler.kae.guest
      vars:
        guest_define_hostdevs: false
        guest_validate_xml: false
        guest_hostdev_migration_attr: false
  post_tasks:
    - name: Write what each guest got
      ansible.builtin.copy:
        content: "{{ guest_vfs_taken | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0644"
"""
NODE = "<node>%s</node>"
DOMAIN = ("<domain type='test'><name>%s</name><memory>131072</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
          "<devices/></domain>")


def host_vars(tmp_path, name, guests, **build):
    """Inventory variables of one host: a simulated tree (simsysfs.build keywords) and a node with GUESTS defined."""
    root = tmp_path / name
    simsysfs.build(str(root / "sysfs"), vfs=2, **build)
    node = root / "node.xml"
    node.write_text(NODE % "".join(DOMAIN % guest["name"] for guest in guests))
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "guest_sysfs_root": str(root / "sysfs"),
            "guest_libvirt_uri": "test://%s" % node, "guest_domains": guests, "out_dir": str(tmp_path)}


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """One playbook run over two hosts: 'roomy' fits its guests, 'tight' (one node) cannot serve its second guest."""
    tmp_path = tmp_path_factory.mktemp("guest_role")
    roomy = [{"name": "vm1"}, {"name": "vm2"}, {"name": "vm3", "request": {"zip": 1}}]
    tight = [{"name": "vm1", "request": {"zip": 2, "sec": 1}}, {"name": "vm2", "request": {"zip": 1, "hpre": 1}}]
    inventory = {"all": {"hosts": {"roomy": host_vars(tmp_path, "roomy", roomy),
                                   "tight": host_vars(tmp_path, "tight", tight, nodes=(0,)),
                                   "labhost": host_vars(tmp_path, "labhost", roomy[:2], lab_marker=True)}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(textwrap.dedent(PLAYBOOK))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0",
               PATH="%s:%s" % (Path(sys.executable).parent, os.environ.get("PATH", "")))
    completed = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "inventory.json"),
                                str(tmp_path / "play.yml")], cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                               check=False)
    taken = dict((host, json.loads((tmp_path / ("%s.json" % host)).read_text()))
                 for host in ("roomy", "tight", "labhost") if (tmp_path / ("%s.json" % host)).exists())
    return completed, taken


def by_guest(taken):
    guests = {}
    for bdf, guest in taken.items():
        guests.setdefault(guest, []).append(bdf)
    return dict((guest, sorted(bdfs)) for guest, bdfs in guests.items())


def test_each_guest_of_a_host_gets_its_own_vfs(played):
    completed, taken = played
    assert "roomy" in taken, completed.stdout + completed.stderr
    guests = by_guest(taken["roomy"])
    # Node 0 has two VFs of each engine: vm1 and vm2 each get three of their own there; no ZIP VF is left on node 0
    # for vm3, which gets one on node 2.
    assert guests == {"vm1": ["0000:75:00.1", "0000:76:00.1", "0000:79:00.1"],
                      "vm2": ["0000:75:00.2", "0000:76:00.2", "0000:79:00.2"],
                      "vm3": ["0000:b5:00.1"]}


def test_on_a_lab_tree_each_guest_records_its_own_vfs_in_its_metadata(played):
    completed, taken = played
    assert by_guest(taken["labhost"]) == {"vm1": ["0000:75:00.1", "0000:76:00.1", "0000:79:00.1"],
                                          "vm2": ["0000:75:00.2", "0000:76:00.2", "0000:79:00.2"]}
    # guest_config wrote the chosen VFs as each guest's simulated holdings (the test driver forgets them afterwards).
    for guest in ("vm1", "vm2"):
        assert ("lab holdings of %s in its <metadata><kae:vfs>: %s (changed)" % (guest, ", ".join(by_guest(taken["labhost"])[guest]))
                in completed.stdout), completed.stdout
    # Hosts whose trees carry no lab marker record nothing.
    assert completed.stdout.count("lab holdings of") == 2


def test_a_guest_the_remaining_vfs_cannot_serve_is_refused_naming_what_is_missing(played):
    completed, taken = played
    assert "tight" not in taken, "the play stopped on the host whose second guest got nothing"
    failures = re.findall(r"fatal: \[tight\]: FAILED! => (.*)", completed.stdout)
    assert failures, completed.stdout + completed.stderr
    text = json.loads(failures[-1])["msg"]
    assert text.startswith("guest vm2 gets no KAE VFs on tight: no NUMA node has 1 zip, 1 hpre free VFs")
    assert "node 0 lacks zip (0 free of 1 wanted)" in text
    assert "VFs given to the guests before it in this run: 0000:75:00.1 to vm1, 0000:75:00.2 to vm1, 0000:76:00.1 to vm1" in text
    assert completed.returncode != 0
