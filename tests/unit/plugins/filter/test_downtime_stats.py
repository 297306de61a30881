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


@pytest.mark.parametrize("values, threshold, named", [
    ([158, "nan"], 200, "downtime #2"),
    (["1e999"], 200, "downtime #1"),
    ([10 ** 400], 200, "downtime #1"),
    (["\u0661\u0665\u0668"], 200, "downtime #1"),
    (["158\x00"], 200, "downtime #1"),
    ([[158]], 200, "downtime #1"),
    (None, 200, "expected a list of downtimes"),
    ({"a": 1}, 200, "expected a list of downtimes"),
    ([158], "nan", "threshold_ms"),
    ([158], "inf", "threshold_ms"),
    ([158], "1e99999999", "threshold_ms"),
    ([158], {"ms": 200}, "threshold_ms"),
])
def test_every_bad_input_is_a_filter_error(values, threshold, named):
    with pytest.raises(AnsibleFilterError) as caught:
        downtime_stats(values, threshold)
    assert str(caught.value).startswith("openeuler.kae.downtime_stats: ") and named in str(caught.value)
