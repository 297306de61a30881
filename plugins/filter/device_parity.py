# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: device_parity
short_description: Compare the KAE devices of a migration's source and destination hosts
version_added: 0.1.0
description:
  - Returns the differences between two hosts that would make a KAE VF migration fail the driver's
    compatibility check (same device id, same queue count, same isolation configuration), each as a sentence
    naming the PF and both values. An empty list means the hosts match.
  - Compared are the engines present, the C(pf_q_num) of each engine's driver (when both inputs are whole
    M(openeuler.kae.device_info) results and both hosts expose it), and per PF its engine, C(revision) and
    C(sriov_numvfs).
  - PFs are matched by PCI address, because a migrating guest keeps its hostdev addresses.
author:
  - openEuler KAE collection contributors (@openeuler)
options:
  _input:
    description: The source host's M(openeuler.kae.device_info) result, or its RV(openeuler.kae.device_info#module:devices) list.
    type: raw
    required: true
  destination:
    description: The destination host's M(openeuler.kae.device_info) result, or its RV(openeuler.kae.device_info#module:devices) list.
    type: raw
    required: true
seealso:
  - module: openeuler.kae.device_info
"""

EXAMPLES = r"""
- name: Refuse to migrate between hosts whose KAE set-up differs
  ansible.builtin.assert:
    that: parity | length == 0
    fail_msg: "KAE devices differ between the hosts: {{ parity | join('; ') }}"
  vars:
    parity: "{{ hostvars[src].kae | openeuler.kae.device_parity(hostvars[dst].kae) }}"
"""

RETURN = r"""
_value:
  description: One sentence per mismatch; empty when the hosts match.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.module_utils import _devices


def device_parity(source, destination):
    try:
        return _devices.parity(source, destination)
    except _devices.DeviceError as exc:
        raise AnsibleFilterError("openeuler.kae.device_parity: %s; pass each host's registered device_info result "
                                 "(or its devices list)" % exc) from None


class FilterModule:
    def filters(self):
        return {"device_parity": device_parity}
