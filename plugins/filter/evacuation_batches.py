# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: evacuation_batches
short_description: Split an evacuation plan into batches of migrations that may run at once
version_added: 0.1.0
author: openEuler KAE collection contributors (@openeuler)
description:
  - Takes the placements of an evacuation plan (P(openeuler.kae.place_guests#filter)) and returns them in batches, so
    that no batch holds more than O(per_source) migrations from one host, O(per_destination) into one host, and
    O(total) in all.
  - The role C(openeuler.kae.evacuation) runs the batches one after the other (the play's C(serial) is the list of
    batch sizes) and the migrations of a batch side by side (forks), so the limits hold for the whole evacuation.
  - First fit in plan order; each placement goes into the first batch that has room for its source, its destination
    and one more migration. The same placements give the same batches.
  - A placement listed twice for one guest, a limit that is not a whole number from 1 to 1000, or a placement
    without C(guest), C(source) and C(destination) fails with a message naming it.
options:
  _input:
    description: The placements (each with at least C(guest), C(source) and C(destination)), in plan order.
    type: list
    elements: dict
    required: true
  per_source:
    description: Migrations at once from one host.
    type: int
    default: 2
  per_destination:
    description: Migrations at once into one host.
    type: int
    default: 2
  total:
    description: Migrations at once in all.
    type: int
    default: 5
seealso:
  - plugin: openeuler.kae.place_guests
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Batches of at most 2 per source, 2 per destination, 5 in all
  ansible.builtin.set_fact:
    evacuation_batches: "{{ evacuation_plan.placements | openeuler.kae.evacuation_batches(per_source=2, per_destination=2, total=5) }}"

- name: The play's serial, one entry per batch
  ansible.builtin.set_fact:
    evacuation_serial: "{{ evacuation_batches | map('length') | list }}"
"""

RETURN = r"""
_value:
  description:
    - The batches, in the order they run; each is a list of the placements it holds, each with its batch number (from 1)
      added as C(batch). C(flatten(levels=1)) gives every placement in the order they run.
  type: list
  elements: list
  sample: [[{"guest": "vm1", "source": "hv03", "destination": "hv11", "batch": 1},
            {"guest": "vm2", "source": "hv03", "destination": "hv12", "batch": 1}],
           [{"guest": "vm3", "source": "hv03", "destination": "hv11", "batch": 2}]]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.module_utils import _evacuation


def evacuation_batches(placements, per_source=2, per_destination=2, total=5):
    try:
        return _evacuation.batches(placements, per_source, per_destination, total)
    except _evacuation.EvacuationError as exc:
        raise AnsibleFilterError("openeuler.kae.evacuation_batches: %s" % exc) from None


class FilterModule:
    """openeuler.kae.evacuation_batches"""

    def filters(self):
        return {"evacuation_batches": evacuation_batches}
