# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: place_guests
short_description: Plan where the KAE guests of hosts to be drained go, and which VFs they get there
version_added: 0.1.0
description:
  - For a fleet evacuation (draining hypervisors before a kernel or firmware update), chooses for every guest a
    destination host and destination VFs, all on one NUMA node of the destination, of the same engine as the
    guest's VFs and of the same queue class where it is known.
  - A destination must have a KAE set-up compatible with the guest's source host, as
    P(openeuler.kae.device_parity#filter) compares them (engines, C(pf_q_num), per PF its address, revision and
    C(sriov_numvfs), and the build of every driver module on the migration path); C(pf_q_num) and the driver builds
    must also be known on both. Hosts are grouped into classes of equal set-ups, so the check runs once per source
    host and class.
  - A VF is free when no domain holds it, it is bound to a migration driver and its hardware supports migration,
    and its owner could be read. On a host whose facts say libvirt could not be asked (RV(openeuler.kae.device_info#module:libvirt.available)
    false), or a VF whose C(owner_known) is false, no VF counts as free. VFs the moving guests hold, and the memory they
    use, are not counted as freed.
  - A VF's queue class (RV(openeuler.kae.device_info#module:devices[].queue_class), the engine's C(pf_q_num), the PF's
    C(sriov_numvfs), and whether it is the PF's last VF, which gets the remainder of the queues) must match, so a source VF
    of a known class only gets a destination VF of the same class. A VF whose class the facts do not fully give is
    matched by engine alone, and the placement says so.
  - Guests are placed biggest first (VFs, then memory, then vCPUs, then name), each on the compatible host with the
    most free memory left, then the most free vCPUs, then the first name. Each placement consumes the VFs, memory and
    vCPUs it takes, so no VF is given twice and the guests spread over the hosts. The same input always gives the
    same plan, whatever the order of the guests or hosts in it.
  - A guest no host can take is listed with its reasons, each naming the hosts it applies to.
  - Bad input (a missing key, a wrong type, NaN, a number given as a string, a duplicate guest name, a host that
    is not in the facts) fails with a message naming the field and the expected form; the plan is all or nothing.
author:
  - openEuler KAE collection contributors (@openeuler)
options:
  _input:
    description:
      - Every host's device facts, as a mapping of inventory host name to that host's registered
        M(openeuler.kae.device_info) result (RV(openeuler.kae.device_info#module:devices),
        RV(openeuler.kae.device_info#module:pf_q_num), RV(openeuler.kae.device_info#module:libvirt),
        RV(openeuler.kae.device_info#module:drivers), RV(openeuler.kae.device_info#module:kernel_release),
        RV(openeuler.kae.device_info#module:migration_drivers) and RV(openeuler.kae.device_info#module:host) are read).
      - Must hold every guest's source host and every candidate destination.
    type: dict
    required: true
  guests:
    description:
      - The guests to move.
      - Each has C(name) (the libvirt domain name, unique), C(host) (its source host, in O(_input)),
        C(memory_mib) and C(vcpus) (what it needs on the destination), optionally C(pinned_node) (the NUMA node its
        memory is pinned to with C(numatune); its VFs must then sit on that node of the destination), and exactly one of
        C(vfs) (the PCI addresses of the VFs it holds on its source host, from which engines, counts, queue classes and
        the preferred node follow) or C(request) (a mapping of engine, V(zip), V(sec) or V(hpre), to VF count; queue
        classes are then not checked, and M(openeuler.kae.hostdev_remap) checks them at migration time).
    type: list
    elements: dict
    required: true
  capacity:
    description:
      - Each candidate host's free memory in MiB (C(memory_mib), a number >= 0) and free vCPUs (C(vcpus), a whole
        number >= 0), as a mapping of host name to C({memory_mib, vcpus}).
      - A host without an entry is never a destination.
      - From libvirt, for example with C(community.libvirt.virt), C(command=freemem) gives the free memory in bytes
        (libvirt's C(getFreeMemory)), C(command=nodeinfo) the host's C(cpus) (C(getInfo)), C(command=info) each
        domain's C(nrVirtCpu) and C(state). Free vCPUs are the host's CPUs times the overcommit ratio of the site,
        minus the vCPUs of the domains running there. Keep a reserve for the host itself off both figures.
    type: dict
    required: true
  exclude:
    description: Hosts that must not receive a guest.
    type: list
    elements: str
    default: []
  maintenance:
    description: Hosts in maintenance (typically those being drained); they never receive a guest.
    type: list
    elements: str
    default: []
seealso:
  - module: openeuler.kae.device_info
  - module: openeuler.kae.hostdev_remap
  - plugin: openeuler.kae.device_parity
    plugin_type: filter
"""

EXAMPLES = r"""
# On every hypervisor: its KAE devices, and its free memory and vCPUs from libvirt.
- name: Read the KAE devices
  openeuler.kae.device_info:
  register: host_kae

- name: Read free memory (bytes), CPUs and domains from libvirt
  community.libvirt.virt:
    command: "{{ item }}"
  loop: [freemem, nodeinfo, info]
  register: host_libvirt

- name: Free memory in MiB (8 GiB kept for the host) and free vCPUs (CPUs x 2, this site's overcommit, minus running domains' vCPUs)
  ansible.builtin.set_fact:
    host_capacity:
      memory_mib: "{{ [host_libvirt.results[0].freemem // 1048576 - 8192, 0] | max }}"
      vcpus: "{{ [(host_libvirt.results[1].cpus | int) * 2 - (running_vcpus | int), 0] | max }}"
  vars:
    running_vcpus: "{{ host_libvirt.results[2] | dict2items | selectattr('value.state', 'defined') | selectattr('value.state', 'eq', 'running')
                       | map(attribute='value.nrVirtCpu') | map('int') | sum }}"

# Once: the plan for draining hv03 and hv04.
- name: Plan the evacuation
  ansible.builtin.set_fact:
    evacuation: "{{ fleet_kae | openeuler.kae.place_guests(guests=leaving, capacity=fleet_capacity, maintenance=['hv03', 'hv04']) }}"
  run_once: true
  vars:
    fleet: "{{ groups['kae_hypervisors'] }}"
    fleet_kae: "{{ dict(fleet | zip(fleet | map('extract', hostvars, 'host_kae'))) }}"
    fleet_capacity: "{{ dict(fleet | zip(fleet | map('extract', hostvars, 'host_capacity'))) }}"
    leaving:
      - {name: vm1, host: hv03, memory_mib: 16384, vcpus: 8, pinned_node: 0, vfs: ["0000:75:00.1", "0000:76:00.1", "0000:79:00.1"]}
      - {name: vm2, host: hv04, memory_mib: 4096, vcpus: 2, request: {zip: 2}}

- name: Stop when a guest has nowhere to go
  ansible.builtin.assert:
    that: evacuation.unplaced | length == 0
    fail_msg: "{{ evacuation.unplaced | map(attribute='guest') | join(', ') }} cannot move: {{ evacuation.unplaced | map(attribute='reasons') }}"
  run_once: true

- name: Show the plan
  ansible.builtin.debug:
    msg: "{{ item.guest }}: {{ item.source }} -> {{ item.destination }}, node {{ item.numa_node }}, VFs {{ item.mapping or item.vfs }}"
  loop: "{{ evacuation.placements }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    placements:
      description: The guests that can move, in the order they were placed (biggest first).
      type: list
      elements: dict
      contains:
        guest:
          description: The guest's name.
          type: str
        source:
          description: Its source host.
          type: str
        destination:
          description: The host it goes to.
          type: str
        numa_node:
          description: The destination NUMA node of all its VFs.
          type: int
        vfs:
          description: The destination VFs it gets, sorted by address.
          type: list
          elements: str
        mapping:
          description: Source VF to destination VF, for a guest given by C(vfs); empty for a guest given by C(request).
          type: dict
          sample: {"0000:75:00.1": "0000:75:00.3"}
        queue_classes_checked:
          description: Whether every destination VF was matched to the queue class of the source VF (false when a class was
            not known, or the guest was given by C(request)).
          type: bool
    unplaced:
      description: The guests no host can take, in the order they were tried.
      type: list
      elements: dict
      contains:
        guest:
          description: The guest's name.
          type: str
        source:
          description: Its source host.
          type: str
        reasons:
          description:
            - Every host in the facts under at least one reason, grouped by reason, for example the guest's own host, in
              maintenance, excluded, no capacity entry, VF owners unknown, incompatible KAE set-up (naming each difference),
              not enough free VFs of an engine (and queue class) on one NUMA node, free VFs only on different NUMA nodes,
              free VFs not on the node the guest is pinned to, not enough free memory, not enough free vCPUs.
          type: list
          elements: dict
          sample: [{"reason": "not enough free memory: the guest needs 16384 MiB, the most any of these hosts has free is 8192 MiB",
                    "hosts": ["hv01", "hv02"]}]
    incoming:
      description: For each destination, the guests it receives, in placement order.
      type: dict
      sample: {"hv01": ["vm1", "vm7"]}
    classes:
      description: The hosts grouped by KAE set-up; hosts of one group have equal set-ups.
      type: list
      elements: list
      sample: [["hv01", "hv02", "hv03"], ["hv04"]]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.module_utils import _placement


def place_guests(facts, guests=None, capacity=None, exclude=None, maintenance=None):
    if guests is None or capacity is None:
        raise AnsibleFilterError("openeuler.kae.place_guests: guests and capacity are required, for example "
                                 "facts | openeuler.kae.place_guests(guests=leaving, capacity=free_per_host)")
    try:
        return _placement.plan(facts, capacity, guests, exclude, maintenance)
    except _placement.PlacementError as exc:
        raise AnsibleFilterError("openeuler.kae.place_guests: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"place_guests": place_guests}
