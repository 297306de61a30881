# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.filter.downtime_stats import FilterModule, downtime_stats


def test_is_registered_under_its_name():
    assert FilterModule().filters() == {"downtime_stats": downtime_stats}


def test_summarises_against_the_default_and_a_given_threshold():
    assert downtime_stats([158, 147, 152])["passed"] is True
    stats = downtime_stats([158, 147, 152], 150)
    assert (stats["p95_ms"], stats["threshold_ms"], stats["passed"]) == (158.0, 150.0, False)


def test_bad_input_becomes_a_filter_error_naming_the_filter():
    with pytest.raises(AnsibleFilterError, match=r"^openeuler.kae.downtime_stats: expected at least one downtime in milliseconds"):
        downtime_stats([])
    with pytest.raises(AnsibleFilterError, match=r"^openeuler.kae.downtime_stats: downtime #1 must be a number of milliseconds"):
        downtime_stats([{"downtime_ms": 3}])
