# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Convergence of a live migration, as pure logic over libvirt's job statistics.

Progress samples from an active job, the stall detector (remaining data that stopped going down), the limits scaled
by the guest's size, the stepwise maximum downtime, and the pre-flight estimate from a measured dirty rate. Times are
passed in (seconds since the migration started), so every decision can be replayed on recorded samples.
"""

from __future__ import annotations

from ansible_collections.openeuler.kae.plugins.module_utils import _validate

MIB = 1024 * 1024
GIB_MIB = 1024
# QEMU counts dirty pages; libvirt reports the page size beside the rate, 4 KiB when it does not.
DEFAULT_PAGE_SIZE = 4096
# libvirt reports "no bandwidth limit" as the largest value it can hold (INT64_MAX bytes/s in MiB/s).
UNLIMITED_BANDWIDTH_MIB_S = (2 ** 63 - 1) // MIB
# The estimate follows at most this many pre-copy iterations before it calls the migration non-converging.
ESTIMATE_MAX_ITERATIONS = 1000

# QEMU refuses a downtime-limit above 2000 s (MAX_MIGRATE_DOWNTIME in migration/options.c).
QEMU_MAX_DOWNTIME_MS = 2000 * 1000
LIMIT_ACTIONS = ("abort", "suspend")
SCHEDULE_MODES = ("time", "stall")


def _mib(stats, key):
    value = stats.get(key)
    return None if value is None else round(value / float(MIB), 3)


def _first(stats, *keys):
    for key in keys:
        if stats.get(key) is not None:
            return key
    return keys[0]


def progress_sample(stats, t_s):
    """One sample of an active migration job (virDomainGetJobStats of the source) taken T_S seconds after the start.

    Sizes in MiB, rates in MiB/s, times in ms; None for a figure libvirt did not report. Returns None when the job
    reports no remaining data yet (before QEMU's first status), since nothing can be judged from it.
    """
    stats = stats or {}
    remaining_key = _first(stats, "data_remaining", "memory_remaining")
    if stats.get(remaining_key) is None:
        return None
    page_size = stats.get("memory_page_size") or DEFAULT_PAGE_SIZE
    dirty = stats.get("memory_dirty_rate")
    return {
        "t_s": round(t_s, 3),
        "elapsed_ms": stats.get("time_elapsed"),
        "total_mib": _mib(stats, _first(stats, "data_total", "memory_total")),
        "processed_mib": _mib(stats, _first(stats, "data_processed", "memory_processed")),
        "remaining_mib": _mib(stats, remaining_key),
        "rate_mib_s": _mib(stats, "memory_bps"),
        "dirty_rate_mib_s": None if dirty is None else round(dirty * page_size / float(MIB), 3),
        "iteration": stats.get("memory_iteration"),
        # During an active job libvirt's "downtime" is QEMU's expected downtime, not a measured one.
        "expected_downtime_ms": stats.get("downtime"),
        "auto_converge_throttle": stats.get("auto_converge_throttle"),
    }


def _figure(value, unit, text="%.1f"):
    return "?" if value is None else (text % value) + unit


def progress_line(domain, sample, max_downtime_ms):
    """One line for the operator: how far the migration of DOMAIN is, at the maximum downtime in force."""
    return "%s %s: %s of %s left, %s sent, dirty %s, iteration %s, expected downtime %s (limit %s ms)" % (
        domain, _figure(sample["t_s"], " s"), _figure(sample["remaining_mib"], " MiB"), _figure(sample["total_mib"], " MiB"),
        _figure(sample["rate_mib_s"], " MiB/s"), _figure(sample["dirty_rate_mib_s"], " MiB/s"),
        "?" if sample["iteration"] is None else sample["iteration"], _figure(sample["expected_downtime_ms"], " ms", "%d"),
        _figure(max_downtime_ms, "", "%d"))


class StallDetector:
    """Tracks the least remaining data seen; progress is a new minimum (each pre-copy pass re-reads what the guest dirtied,
    so the remaining figure rises between passes while the migration may still be converging)."""

    def __init__(self, timeout_s):
        self.timeout_s = timeout_s
        self.least_mib = None
        self.progress_at_s = 0.0

    def update(self, sample):
        """Take SAMPLE into account; return the seconds since remaining data last went down."""
        if self.least_mib is None or sample["remaining_mib"] < self.least_mib:
            self.least_mib = sample["remaining_mib"]
            self.progress_at_s = sample["t_s"]
        return sample["t_s"] - self.progress_at_s

    def stalled(self, t_s):
        """True once remaining data has not gone down for the timeout (never without a timeout)."""
        return self.timeout_s is not None and t_s - self.progress_at_s >= self.timeout_s


def completion_limit_s(memory_mib, per_gib_s):
    """The completion time limit for a guest of MEMORY_MIB, scaled per GiB of its memory; None without a per-GiB figure."""
    if per_gib_s is None:
        return None
    return round(per_gib_s * memory_mib / float(GIB_MIB), 3)


def limit_reached(t_s, timeout_s, completion_s, detector):
    """Which limit fired at T_S, in the order an operator reads them: (option name, its value in s) or None."""
    if timeout_s is not None and t_s >= timeout_s:
        return ("timeout_s", timeout_s)
    if completion_s is not None and t_s >= completion_s:
        return ("completion_timeout_s_per_gib", completion_s)
    if detector.stalled(t_s):
        return ("progress_timeout_s", detector.timeout_s)
    return None


def why_not_converging(sample, max_downtime_ms):
    """What the last sample says about convergence, for the abort message."""
    if sample is None:
        return "QEMU reported no progress figures"
    head = "remaining %s" % _figure(sample["remaining_mib"], " MiB", "%.0f")
    dirty, sent = sample["dirty_rate_mib_s"], sample["rate_mib_s"]
    if dirty is not None and sent is not None and dirty >= sent:
        return "%s, dirty rate %.0f MiB/s above the %.0f MiB/s sent: the migration cannot converge at %d ms" % (
            head, dirty, sent, max_downtime_ms)
    return "%s, dirty rate %s, %s sent, expected downtime %s above the %d ms allowed" % (
        head, _figure(dirty, " MiB/s", "%.0f"), _figure(sent, " MiB/s", "%.0f"),
        _figure(sample["expected_downtime_ms"], " ms", "%d"), max_downtime_ms)


def limit_reason(limit, sample, max_downtime_ms):
    """What happened when LIMIT (from limit_reached) fired, with what the last sample says about convergence."""
    name, value = limit
    what = {
        "timeout_s": "did not finish within timeout_s %s s" % value,
        "completion_timeout_s_per_gib": "did not finish within %s s (completion_timeout_s_per_gib scaled by its memory)" % value,
        "progress_timeout_s": "made no progress for progress_timeout_s %s s" % value,
    }[name]
    return "%s (%s)" % (what, why_not_converging(sample, max_downtime_ms))


def schedule_problems(start_ms, schedule):
    """One sentence per wrong field of a downtime schedule (steps, delay_s, ceiling_ms, mode), given its first value."""
    if not schedule:
        return []
    problems = []
    checks = (("steps", True, None), ("delay_s", False, None), ("ceiling_ms", True, QEMU_MAX_DOWNTIME_MS))
    for field, integer, maximum in checks:
        try:
            _validate.positive(schedule.get(field), "downtime_schedule.%s" % field, maximum=maximum, integer=integer)
        except _validate.InputError as exc:
            problems.append(str(exc))
    ceiling_ms = schedule.get("ceiling_ms")
    if not problems and ceiling_ms <= start_ms:
        problems.append("downtime_schedule.ceiling_ms (%s) must be above max_downtime_ms (%s), the schedule's first value"
                        % (ceiling_ms, start_ms))
    if schedule.get("mode", "time") not in SCHEDULE_MODES:
        problems.append("downtime_schedule.mode must be one of %s (got %s)" % (", ".join(SCHEDULE_MODES), schedule.get("mode")))
    return problems


class DowntimeSchedule:
    """The maximum downtime in force: START_MS, raised in equal STEPS up to CEILING_MS.

    In "time" mode a step comes every DELAY_S from the start of the migration (as OpenStack Nova raises its downtime);
    in "stall" mode only after DELAY_S without progress (remaining data not going down), counted again after each raise.
    Without a schedule the downtime stays START_MS.
    """

    def __init__(self, start_ms, schedule=None):
        schedule = schedule or {}
        steps = schedule.get("steps") or 0
        ceiling = schedule.get("ceiling_ms") or start_ms
        self.values = [int(round(start_ms + (ceiling - start_ms) * i / float(steps))) for i in range(steps + 1)] if steps else [start_ms]
        self.delay_s = schedule.get("delay_s")
        self.on_stall = schedule.get("mode", "time") == "stall"
        self.step = 0
        self.changed_at_s = 0.0
        self.history = [{"t_s": 0.0, "max_downtime_ms": start_ms}]

    @property
    def current_ms(self):
        return self.values[self.step]

    def raise_due(self, t_s, progress_at_s):
        """The next value when the schedule raises the downtime at T_S (recorded in history), else None."""
        if self.step >= len(self.values) - 1:
            return None
        since = max(self.changed_at_s, progress_at_s) if self.on_stall else self.changed_at_s
        if t_s - since < self.delay_s:
            return None
        self.step += 1
        # Time mode keeps its steps on the clock of the start (no drift from when samples come); stall mode counts
        # the next wait from the raise.
        self.changed_at_s = t_s if self.on_stall else since + self.delay_s
        self.history.append({"t_s": round(t_s, 3), "max_downtime_ms": self.current_ms})
        return self.current_ms


def estimate(memory_mib, dirty_rate_mib_s, bandwidth_mib_s, max_downtime_ms):
    """Whether a pre-copy migration is expected to converge, from the guest's measured dirty rate and the bandwidth.

    The model: pass k sends what remained; while it does, the guest dirties DIRTY x (time of the pass); QEMU stops the
    guest once what remains can be sent within the maximum downtime. Returns a dict with "converges" (True, False or
    None when the bandwidth is unknown), the expected final transfer and downtime, the passes, and a sentence.
    """
    figures = {"memory_mib": memory_mib, "dirty_rate_mib_s": dirty_rate_mib_s, "bandwidth_mib_s": bandwidth_mib_s,
               "max_downtime_ms": max_downtime_ms, "final_transfer_mib": None, "expected_downtime_ms": None, "iterations": None}
    if not bandwidth_mib_s or bandwidth_mib_s >= UNLIMITED_BANDWIDTH_MIB_S:
        figures.update(converges=None, text="dirty rate %.1f MiB/s, bandwidth unknown (no limit set): set bandwidth_mib_s or "
                       "the link's rate to estimate convergence" % dirty_rate_mib_s)
        return figures
    budget_mib = bandwidth_mib_s * max_downtime_ms / 1000.0
    remaining = float(memory_mib)
    for iteration in range(1, ESTIMATE_MAX_ITERATIONS + 1):
        if remaining <= budget_mib:
            downtime_ms = remaining / bandwidth_mib_s * 1000.0
            text = ("dirty rate %.1f MiB/s, bandwidth %.1f MiB/s: converges; expected final transfer ~%.1f MiB, ~%.0f ms, "
                    "within %d ms" % (dirty_rate_mib_s, bandwidth_mib_s, remaining, downtime_ms, max_downtime_ms))
            figures.update(converges=True, final_transfer_mib=round(remaining, 3), expected_downtime_ms=round(downtime_ms, 1),
                           iterations=iteration, text=text)
            return figures
        next_remaining = min(float(memory_mib), dirty_rate_mib_s * remaining / bandwidth_mib_s)
        if next_remaining >= remaining:
            break
        remaining = next_remaining
    figures.update(converges=False, text="dirty rate %.1f MiB/s, bandwidth %.1f MiB/s: does not converge at %d ms (what the guest "
                   "dirties during a pass is not less than what the pass sent; at most %.1f MiB may remain at the stop)"
                   % (dirty_rate_mib_s, bandwidth_mib_s, max_downtime_ms, budget_mib))
    return figures


class Watch:
    """What the waiting loop of a migration decides, from the job statistics it reads every INTERVAL_S.

    Keeps the samples (at most MAX_SAMPLES: past that every other one is dropped, so a long migration stays covered
    end to end), the stall detector, the downtime schedule and the limits.
    """

    MAX_SAMPLES = 1000

    def __init__(self, max_downtime_ms, interval_s, timeout_s, completion_s=None, progress_timeout_s=None, schedule=None):
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.completion_s = completion_s
        self.detector = StallDetector(progress_timeout_s)
        self.schedule = DowntimeSchedule(max_downtime_ms, schedule)
        self.samples = []
        self.next_sample_s = 0.0

    def sample_due(self, t_s):
        return t_s >= self.next_sample_s

    def observe(self, t_s, stats):
        """Take the statistics read at T_S (None when they could not be read); return the maximum downtime to set now, or None."""
        self.next_sample_s = t_s + self.interval_s
        sample = progress_sample(stats, t_s)
        if sample is None:
            return None
        sample["max_downtime_ms"] = self.schedule.current_ms
        self.samples.append(sample)
        if len(self.samples) > self.MAX_SAMPLES:
            self.samples = self.samples[::2]
        self.detector.update(sample)
        return self.schedule.raise_due(t_s, self.detector.progress_at_s)

    def limit(self, t_s):
        return limit_reached(t_s, self.timeout_s, self.completion_s, self.detector)

    @property
    def last(self):
        return self.samples[-1] if self.samples else None

    def summary(self):
        """The figures the module returns about convergence."""
        return {"progress": self.samples, "max_downtime_steps": self.schedule.history,
                "max_downtime_final_ms": self.schedule.current_ms}


# virDomainDirtyRateStatus values in the dirtyrate.calc_status statistic.
DIRTYRATE_MEASURED = 2


def dirty_rate_start(record):
    """The start of the last dirty-rate measurement in a domain's dirtyrate.* statistics, None when there was none.

    QEMU reports it in seconds of the host's monotonic clock, so it can only be compared with another reading of it.
    """
    return (record or {}).get("dirtyrate.calc_start_time")


def measured_dirty_rate(record, previous_start):
    """The dirty rate in MiB/s from a domain's dirtyrate.* statistics once a measurement newer than the one that had
    started at PREVIOUS_START (dirty_rate_start before asking) has finished; None while it runs."""
    stats = record or {}
    if stats.get("dirtyrate.calc_status") != DIRTYRATE_MEASURED or dirty_rate_start(stats) == previous_start:
        return None
    return float(stats.get("dirtyrate.megabytes_per_second", 0))
