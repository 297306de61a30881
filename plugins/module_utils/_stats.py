# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Summary statistics of migration downtimes (milliseconds) against a target."""

from __future__ import annotations

import math
import statistics

from ansible_collections.openeuler.kae.plugins.module_utils._validate import number_text_problem

DEFAULT_THRESHOLD_MS = 200.0


def _as_milliseconds(value, what):
    """Return VALUE as a finite, non-negative float, or raise ValueError naming WHAT."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        hint = ""
        if isinstance(value, dict) and "downtime_ms" in value:
            hint = " (for migration results, pass them through map(attribute='downtime_ms') first)"
        raise ValueError("%s must be a number of milliseconds, got %s %r%s" % (what, type(value).__name__, value, hint))
    if isinstance(value, str) and number_text_problem(value, what):
        raise ValueError("%s must be a number of milliseconds written with the digits 0-9 (such as 158 or 127.5), got the text %r"
                         % (what, value))
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("%s must be a finite number of milliseconds >= 0, got %r" % (what, value)) from None
    if not math.isfinite(number) or number < 0:
        raise ValueError("%s must be a finite number of milliseconds >= 0, got %r" % (what, value))
    return number


def percentile_nearest_rank(sorted_values, percent):
    """Smallest observed value such that at least PERCENT % of the values are <= it."""
    rank = max(1, math.ceil(percent / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def downtime_stats(values_ms, threshold_ms=DEFAULT_THRESHOLD_MS):
    """Return count, min, median, mean, p95 (nearest rank), max and whether every value <= THRESHOLD_MS."""
    if isinstance(values_ms, (str, bytes, dict)) or not hasattr(values_ms, "__iter__"):
        raise ValueError("expected a list of downtimes in milliseconds, got %s %r" % (type(values_ms).__name__, values_ms))
    values = sorted(_as_milliseconds(value, "downtime #%d" % (index + 1)) for index, value in enumerate(values_ms))
    if not values:
        raise ValueError("expected at least one downtime in milliseconds, got an empty list (did any migration round run?)")
    threshold = _as_milliseconds(threshold_ms, "threshold_ms")
    return {
        "count": len(values),
        "min_ms": round(values[0], 3),
        "median_ms": round(statistics.median(values), 3),
        "mean_ms": round(statistics.fmean(values), 3),
        "p95_ms": round(percentile_nearest_rank(values, 95), 3),
        "max_ms": round(values[-1], 3),
        "threshold_ms": round(threshold, 3),
        "passed": values[-1] <= threshold,
    }
