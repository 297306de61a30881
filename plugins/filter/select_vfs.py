# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: select_vfs
short_description: Choose free KAE VFs, all on one NUMA node
version_added: 0.1.0
description:
  - From the device list of M(openeuler.kae.device_info), choose the VFs a guest gets, all on one NUMA node.
  - A VF qualifies when it is free (libvirt said that no domain holds it), bound to a migration driver
    (C(hisi_acc_vfio_pci) or C(vfio-pci)) and on migratable hardware (revision C(0x30) or later).
  - Refuses to choose anything when the device facts say that VF ownership could not be read
    (RV(openeuler.kae.device_info#module:devices[].owner_known=false), libvirt unreachable), or do not say it at all,
    since a VF whose domain is unknown may be a guest's. The message gives the reason.
  - Every device is checked first (PCI address C(DDDD:BB:SS.F), engine, function, C(numa_node) a number, ...); a bad
    one fails naming its index and field.
  - Nodes are tried in the order O(prefer_node) first, then ascending; in a node the lowest addresses win.
  - Fails with a sentence saying, for each node, which engines it lacks.
author:
  - openEuler KAE collection contributors (@openeuler)
options:
  _input:
    description: The RV(openeuler.kae.device_info#module:devices) list.
    type: list
    elements: dict
    required: true
  request:
    description: How many VFs of each engine (V(zip), V(sec), V(hpre)) to choose, each a whole number from 0 to 65535.
    type: dict
    default: {"zip": 1, "hpre": 1, "sec": 1}
  prefer_node:
    description: NUMA node to try first (for example the node the guest's memory and vCPUs are pinned to).
    type: int
seealso:
  - module: openeuler.kae.device_info
"""

EXAMPLES = r"""
- name: One ZIP, one HPRE and one SEC VF on one node, node 0 preferred
  ansible.builtin.set_fact:
    guest_vfs: "{{ kae.devices | openeuler.kae.select_vfs(prefer_node=0) }}"

- name: Two ZIP VFs only
  ansible.builtin.set_fact:
    zip_vfs: "{{ kae.devices | openeuler.kae.select_vfs(request={'zip': 2}) | map(attribute='bdf') }}"
"""

RETURN = r"""
_value:
  description: The chosen VF device dicts, in the order of O(request)'s engines.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.module_utils import _devices, _validate


def _check_prefer_node(prefer_node):
    if prefer_node is None:
        return None
    try:
        return _validate.number(prefer_node, "prefer_node", minimum=-1, maximum=_devices.MAX_COUNT, integer=True)
    except _validate.InputError as exc:
        raise AnsibleFilterError("openeuler.kae.select_vfs: %s; pass a NUMA node number such as 0 "
                                 "(for example prefer_node=guest_node | int)" % exc) from None


def select_vfs(devices, request=None, prefer_node=None):
    prefer_node = _check_prefer_node(prefer_node)
    try:
        return _devices.select_vfs(devices, request, prefer_node)
    except _devices.DeviceError as exc:
        raise AnsibleFilterError("openeuler.kae.select_vfs: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"select_vfs": select_vfs}
