# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils._stats import downtime_stats, percentile_nearest_rank


def test_report_runs_against_the_default_200_ms_target():
    assert downtime_stats([158, 147, 152]) == {
        "count": 3, "min_ms": 147.0, "median_ms": 152.0, "mean_ms": 152.333, "p95_ms": 158.0, "max_ms": 158.0,
        "threshold_ms": 200.0, "passed": True,
    }


def test_one_value_above_the_threshold_fails_the_run():
    stats = downtime_stats([158.0, 147.0, 152.0], threshold_ms=150)
    assert stats["passed"] is False
    assert stats["threshold_ms"] == 150.0


def test_a_value_equal_to_the_threshold_passes():
    assert downtime_stats([200.0])["passed"] is True


def test_even_count_median_and_rounding_to_three_decimals():
    stats = downtime_stats([10.0004, 20.0, "30.5", 40])
    assert stats["median_ms"] == 25.25
    assert stats["min_ms"] == 10.0
    assert stats["mean_ms"] == 25.125


def test_p95_is_the_nearest_rank_observed_value():
    values = list(range(1, 101))
    assert percentile_nearest_rank(values, 95) == 95
    assert downtime_stats(values[::-1])["p95_ms"] == 95.0
    assert downtime_stats(list(range(1, 20)))["p95_ms"] == 19.0
    assert downtime_stats(list(range(1, 21)))["p95_ms"] == 19.0


@pytest.mark.parametrize("values, expected", [
    ([], "expected at least one downtime in milliseconds, got an empty list"),
    (None, "expected a list of downtimes in milliseconds, got NoneType None"),
    ("12.5", "expected a list of downtimes in milliseconds, got str '12.5'"),
    ([12.5, "slow"], "downtime #2 must be a number of milliseconds written with the digits 0-9 (such as 158 or 127.5), got the text 'slow'"),
    (["\u0661\u0662"], "downtime #1 must be a number of milliseconds written with the digits 0-9"),
    (["1e99999999"], "downtime #1 must be a number of milliseconds written with the digits 0-9"),
    (["1e999"], "downtime #1 must be a finite number of milliseconds >= 0, got '1e999'"),
    ([10 ** 400], "downtime #1 must be a finite number of milliseconds >= 0, got 1000"),
    (["nan"], "downtime #1 must be a number of milliseconds written with the digits 0-9"),
    ([True], "downtime #1 must be a number of milliseconds, got bool True"),
    ([None], "downtime #1 must be a number of milliseconds, got NoneType None"),
    ([-3], "downtime #1 must be a finite number of milliseconds >= 0, got -3"),
    ([float("inf")], "downtime #1 must be a finite number of milliseconds >= 0, got inf"),
    ([{"downtime_ms": 12.5}], "map(attribute='downtime_ms')"),
])
def test_bad_values_are_named(values, expected):
    with pytest.raises(ValueError) as caught:
        downtime_stats(values)
    assert expected in str(caught.value)


@pytest.mark.parametrize("threshold", ["high", None, -1, "nan", "inf", float("nan"), 10 ** 400, "\u0662\u0660\u0660", [200]])
def test_bad_threshold_is_named(threshold):
    with pytest.raises(ValueError, match="^threshold_ms must be"):
        downtime_stats([1.0], threshold_ms=threshold)
