# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: evacuation_plan
short_description: Plan the evacuation of one hypervisor, its KAE guests or every guest
version_added: 0.1.0
author: openEuler KAE collection contributors (@openeuler)
description:
  - Chooses the guests that leave the drained host O(host) and where each goes.
  - A guest's VFs are the PCI devices its definition holds (O(guests)) and the VFs the host's device facts give to it
    (M(openeuler.kae.device_info)'s C(domain) and C(domains)). A guest holding a KAE VF is placed by
    P(openeuler.kae.place_guests#filter), with O(host) in maintenance, on a destination of a compatible KAE set-up with
    free VFs of the same engines and queue classes on one NUMA node, memory and vCPUs.
  - With O(all_guests=true) the guests holding no VF move too and are placed by memory and vCPUs on what the KAE
    placements leave (biggest first, most free memory first, like P(openeuler.kae.place_guests#filter)); without, they
    stay and are listed in RV(_value.staying).
  - A guest holding a PCI device that is not a KAE VF of O(host) cannot be live migrated; it is unplaced, with that reason.
  - Guests that are gone from O(host) are not in O(guests), so planning again after a partial evacuation plans only what is left.
  - Bad input fails with a message naming the field and the expected form; the plan is all or nothing.
options:
  _input:
    description: Every hypervisor's M(openeuler.kae.device_info) result, by inventory host name (as for P(openeuler.kae.place_guests#filter)).
    type: dict
    required: true
  host:
    description: The host to drain; must be in the facts.
    type: str
    required: true
  guests:
    description: The guests running on O(host), as M(openeuler.kae.hypervisor_info) returns them (RV(openeuler.kae.hypervisor_info#module:guests)).
    type: list
    elements: dict
    required: true
  capacity:
    description:
      - Every candidate host's free C(memory_mib) and C(vcpus), a mapping of host name to both, for example the
        RV(openeuler.kae.hypervisor_info#module:capacity) entries of every hypervisor combined.
    type: dict
    required: true
  all_guests:
    description: Move the guests that hold no VF too.
    type: bool
    default: false
  exclude:
    description: Hosts that must not receive a guest.
    type: list
    elements: str
    default: []
  cpu_ratio:
    description:
      - The site's CPU overcommit, from 1 to 64. Above 1, each host's free vCPUs become its CPUs times this ratio minus
        the vCPUs of its running domains, from O(totals); V(1) takes O(capacity)'s vCPUs as they are (one host CPU per vCPU).
    type: float
    default: 1
  totals:
    description:
      - Each host's RV(openeuler.kae.hypervisor_info#module:totals) by host name (C(cpus), C(vcpus_used)), for O(cpu_ratio).
    type: dict
seealso:
  - plugin: openeuler.kae.place_guests
    plugin_type: filter
  - plugin: openeuler.kae.evacuation_batches
    plugin_type: filter
  - module: openeuler.kae.hypervisor_info
"""

EXAMPLES = r"""
- name: Plan the evacuation of hv03 from every hypervisor's device facts and hypervisor_info
  ansible.builtin.set_fact:
    evacuation_plan: >-
      {{ fleet_kae | openeuler.kae.evacuation_plan(host='hv03', guests=hostvars['hv03'].hv.guests,
         capacity=fleet | map('extract', hostvars, ['hv', 'capacity']) | combine) }}
  vars:
    fleet: "{{ groups['kae_hypervisors'] }}"
    fleet_kae: "{{ dict(fleet | zip(fleet | map('extract', hostvars, 'host_kae'))) }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    placements:
      description:
        - The guests that can move, KAE guests first in P(openeuler.kae.place_guests#filter)'s order, then the others;
          each C(guest), C(source), C(destination), C(numa_node), C(vfs) (destination VFs), C(mapping) and
          C(queue_classes_checked), as P(openeuler.kae.place_guests#filter) gives them (a guest without VFs has empty
          C(vfs) and C(mapping) and C(numa_node) null).
      type: list
      elements: dict
    unplaced:
      description: C(guest), C(source) and C(reasons) (each C(reason) and the C(hosts) it applies to) of each guest that cannot move.
      type: list
      elements: dict
    moving:
      description: Every guest the plan is about, with C(vfs) (the VFs it holds on O(host)) and C(kae) (whether it holds KAE VFs only).
      type: dict
      sample: {"vm1": {"vfs": ["0000:75:00.1"], "kae": true}}
    staying:
      description: The guests that hold no VF and stay, without O(all_guests).
      type: list
      elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.module_utils import _evacuation


def evacuation_plan(facts, host=None, guests=None, capacity=None, all_guests=False, exclude=None, cpu_ratio=1, totals=None):
    if host is None or guests is None or capacity is None:
        raise AnsibleFilterError("openeuler.kae.evacuation_plan: host, guests and capacity are required, for example "
                                 "facts | openeuler.kae.evacuation_plan(host='hv03', guests=hv03_guests, capacity=free_per_host)")
    if not isinstance(all_guests, bool):
        raise AnsibleFilterError("openeuler.kae.evacuation_plan: all_guests must be true or false, got %r; pass it through | bool" % (all_guests,))
    try:
        return _evacuation.plan(facts, host, guests, capacity, all_guests, exclude, cpu_ratio, totals)
    except _evacuation.EvacuationError as exc:
        raise AnsibleFilterError("openeuler.kae.evacuation_plan: %s" % exc) from None


class FilterModule:
    """openeuler.kae.evacuation_plan"""

    def filters(self):
        return {"evacuation_plan": evacuation_plan}
