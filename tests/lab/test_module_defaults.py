# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared options set once through meta/runtime.yml's action groups, in a play against the lab hosts.

device_info gets sysfs_root and uri only from ``module_defaults: {group/openeuler.kae.host: ...}``: it must read
each host's simulated tree (the hosts' real /sys has no KAE device) and ask libvirt at the URI of the group.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _devices
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs

UNREACHABLE_URI = "qemu+unix:///system?socket=/nonexistent/kae-defaults-sock"

PLAYBOOK = """
- name: Shared options set once for the modules that read the host
  hosts: kae_hypervisors
  gather_facts: false
  module_defaults:
    group/openeuler.kae.host:
      sysfs_root: "{{ kae_sysfs_root }}"
      uri: "{{ defaults_uri }}"
  tasks:
    - name: Read the KAE devices with no option given in the task
      openeuler.kae.device_info:
      register: defaults_facts

    - name: Hand the result to the test
      ansible.builtin.copy:
        content: "{{ defaults_facts | to_json }}"
        dest: "%(out)s/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost

- name: A group default a member does not take
  hosts: kae-lab-a
  gather_facts: false
  module_defaults:
    group/openeuler.kae.all:
      sysfs_root: "{{ kae_sysfs_root }}"
  tasks:
    - name: clock_offset has no sysfs_root
      openeuler.kae.clock_offset:
        servers: ["{{ kae_ntp_server }}"]
      register: defaults_foreign
      ignore_errors: true

    - name: Hand the result to the test
      ansible.builtin.copy:
        content: "{{ defaults_foreign | to_json }}"
        dest: "%(out)s/foreign.json"
        mode: "0644"
      delegate_to: localhost
"""


@pytest.fixture
def play_with_defaults(tmp_path, ansible_playbook):
    """Callable: run the playbook with the group's uri set to URI; returns {file stem: result} and the run."""
    playbook = tmp_path / "defaults.yml"
    playbook.write_text(textwrap.dedent(PLAYBOOK % {"out": tmp_path}))

    def play(uri):
        for old in tmp_path.glob("*.json"):
            old.unlink()
        run = ansible_playbook(str(playbook), "-e", json.dumps({"defaults_uri": uri}))
        assert run.returncode == 0, run.stdout + run.stderr
        return {path.stem: json.loads(path.read_text()) for path in tmp_path.glob("*.json")}

    return play


def simulated_pfs(lab, host):
    """PCI addresses of the PFs in HOST's simulated tree, read on the controller."""
    tree = Sysfs(str(lab.kaelab.STATE / "hosts" / host / "sysfs"))
    return sorted(device["bdf"] for device in _devices.scan(tree) if device["function"] == "pf")


def test_host_group_sets_sysfs_root_and_uri(lab, play_with_defaults):
    results = play_with_defaults("qemu:///system")
    for host in lab.hosts:
        facts = results[host]
        assert facts["sysfs_root"] == "/var/lib/kae-lab/hosts/%s/sysfs" % host
        pfs = sorted(device["bdf"] for device in facts["devices"] if device["function"] == "pf")
        assert pfs and pfs == simulated_pfs(lab, host)
        assert facts["libvirt"]["available"] is True and facts["libvirt"]["uri"] == "qemu:///system"

    # The same play with another URI in the group: the module asks that one (and says it could not).
    results = play_with_defaults(UNREACHABLE_URI)
    for host in lab.hosts:
        note = results[host]["libvirt"]
        assert note["available"] is False and note["uri"] == UNREACHABLE_URI
        assert UNREACHABLE_URI in note["reason"]
        assert all(device["owner_known"] is False for device in results[host]["devices"] if device["function"] == "vf")


def test_a_group_default_the_module_lacks_fails_it(lab, play_with_defaults):
    """Why sysfs_root goes through the host group, not all: ansible-core passes it on and the module refuses it."""
    foreign = play_with_defaults("qemu:///system")["foreign"]
    assert foreign["failed"] is True
    assert foreign["msg"].startswith("Unsupported parameters for (openeuler.kae.clock_offset) module: sysfs_root.")
