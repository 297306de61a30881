# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: downtime_stats
short_description: Summary of migration downtimes against a target
version_added: 0.1.0
author: openEuler KAE collection contributors (@openeuler)
description:
  - Turns a list of downtimes in milliseconds (for example the C(downtime_ms) of each
    P(openeuler.kae.migration_downtime#filter) result) into count, minimum, median, mean, 95th percentile and maximum,
    and says whether every downtime is within O(threshold_ms).
  - The 95th percentile is the nearest-rank one, an observed value; with fewer than 20 values it is the maximum.
  - Figures are rounded to 3 decimals.
positional: threshold_ms
options:
  _input:
    description: Downtimes in milliseconds; numbers, or text holding a number. None may be negative.
    type: list
    elements: raw
    required: true
  threshold_ms:
    description: The target every downtime must meet. The openEuler test report's target is 200 ms.
    type: float
    default: 200
"""

EXAMPLES = r"""
- name: Summarise the rounds against the report's 200 ms target
  ansible.builtin.set_fact:
    migration_summary: "{{ migration_rounds | map(attribute='downtime_ms') | openeuler.kae.downtime_stats }}"

- name: The openEuler 22.03 LTS SP4 report's three runs against a stricter target
  ansible.builtin.debug:
    msg: "{{ [158, 147, 152] | openeuler.kae.downtime_stats(threshold_ms=150) }}"
    # count 3, min_ms 147.0, median_ms 152.0, mean_ms 152.333, p95_ms 158.0, max_ms 158.0, threshold_ms 150.0, passed false
"""

RETURN = r"""
_value:
  description:
    - C(count) (int), C(min_ms), C(median_ms), C(mean_ms), C(p95_ms), C(max_ms), C(threshold_ms) (floats, milliseconds),
      and C(passed) (bool, true when every downtime is at most O(threshold_ms)).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.module_utils._stats import DEFAULT_THRESHOLD_MS, downtime_stats as summarise


def downtime_stats(values_ms, threshold_ms=DEFAULT_THRESHOLD_MS):
    """Count, min, median, mean, p95, max of VALUES_MS and whether all are <= THRESHOLD_MS."""
    try:
        return summarise(values_ms, threshold_ms)
    except ValueError as exc:
        raise AnsibleFilterError("openeuler.kae.downtime_stats: %s" % exc) from None


class FilterModule:
    """openeuler.kae.downtime_stats"""

    def filters(self):
        return {"downtime_stats": downtime_stats}
