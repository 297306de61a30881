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
  - When both inputs are whole M(openeuler.kae.device_info) results, the build of every module on the migration path is
    compared too (C(hisi_qm), C(hisi_zip), C(hisi_sec2), C(hisi_hpre), and C(hisi_acc_vfio_pci) or C(vfio_pci) with
    C(hisi_migration)), by C(srcversion), C(version), built in or loaded, and the kernel release for modules without a
    C(srcversion). The VF migration stream changed between driver builds; a newer driver accepts the older stream, an
    older one rejects the newer. Each sentence names both hosts and both identities.
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
  allow_newer_destination:
    description:
      - For a one-way move (no migration back), a driver build difference where the destination's build is the newer one
        (by declared C(version), or by kernel release for modules identified by it) is not returned as a mismatch; get
        those differences, each saying why it is allowed, with O(warnings=true).
      - A difference whose order cannot be told (same version, different C(srcversion)) stays a mismatch.
    type: bool
    default: false
  warnings:
    description: Return the differences O(allow_newer_destination) allowed instead of the mismatches.
    type: bool
    default: false
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

- name: Evacuate one way to a host with newer KAE drivers, saying what was allowed
  ansible.builtin.debug:
    msg: "{{ hostvars[src].kae | openeuler.kae.device_parity(hostvars[dst].kae, allow_newer_destination=true, warnings=true) }}"
"""

RETURN = r"""
_value:
  description: One sentence per mismatch; empty when the hosts match. With O(warnings=true), one sentence per allowed difference.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.module_utils import _devices, _drivers


def device_parity(source, destination, allow_newer_destination=False, warnings=False):
    for name, value in (("allow_newer_destination", allow_newer_destination), ("warnings", warnings)):
        if not isinstance(value, bool):
            raise AnsibleFilterError("openeuler.kae.device_parity: %s must be true or false, got %r" % (name, value))
    try:
        problems = _devices.parity(source, destination)
    except _devices.DeviceError as exc:
        raise AnsibleFilterError("openeuler.kae.device_parity: %s; pass each host's registered device_info result "
                                 "(or its devices list)" % exc) from None
    driver_problems, allowed = _drivers.parity(source, destination, allow_newer_destination)
    return allowed if warnings else problems + driver_problems


class FilterModule:
    def filters(self):
        return {"device_parity": device_parity}
