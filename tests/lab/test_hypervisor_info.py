# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hypervisor_info on both lab hosts, its uri from the libvirt action group: the guest is a guest of exactly the host
it runs on, with the memory and vCPUs libvirt gives it, and each host's free vCPUs are its CPUs less the running ones."""

from __future__ import annotations

import json
import textwrap

import libvirt

PLAYBOOK = """
- name: Read each hypervisor's capacity and guests
  hosts: kae_hypervisors
  gather_facts: false
  module_defaults:
    group/openeuler.kae.libvirt:
      uri: qemu:///system
  tasks:
    - name: Read the hypervisor
      openeuler.kae.hypervisor_info:
        host_name: "{{ inventory_hostname }}"
      register: hv

    - name: Hand the result to the test
      ansible.builtin.copy:
        content: "{{ hv | to_json }}"
        dest: "%(out)s/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
"""


def running(conn):
    return conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)


def test_the_guest_is_on_exactly_the_host_it_runs_on(lab, conns, tmp_path, ansible_playbook):
    playbook = tmp_path / "hv.yml"
    playbook.write_text(textwrap.dedent(PLAYBOOK % {"out": tmp_path}))
    run = ansible_playbook(str(playbook))
    assert run.returncode == 0, run.stdout + run.stderr
    results = {host: json.loads((tmp_path / ("%s.json" % host)).read_text()) for host in lab.hosts}

    holders = sorted(host for host, result in results.items() if lab.guest in [g["name"] for g in result["guests"]])
    assert holders == lab.running_on(conns) and len(holders) == 1
    host = holders[0]
    entry = next(g for g in results[host]["guests"] if g["name"] == lab.guest)
    _state, max_memory_kib, _memory, vcpus, _time = conns[host].lookupByName(lab.guest).info()
    assert entry["host"] == host and entry["memory_mib"] == -(-max_memory_kib // 1024) and entry["vcpus"] == vcpus
    assert results[host]["states"][lab.guest] == "running"

    for name, result in results.items():
        assert result["changed"] is False and set(result["capacity"]) == {name}
        cpus = conns[name].getInfo()[2]
        used = sum(dom.info()[3] for dom in running(conns[name]))
        assert result["totals"]["cpus"] == cpus and result["totals"]["vcpus_used"] == used
        assert result["capacity"][name]["vcpus"] == max(0, cpus - used)
        assert 0 < result["capacity"][name]["memory_mib"] <= result["totals"]["memory_mib"]
