# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""The record of one measured migration: the contract between the migration unit, the rounds, the
fleet evacuation and the report.

A record is built from what the steps of a migration returned (the live_migration result, both hosts'
trace events, the VF remap, the clock offset, an error) and has the same keys whatever happened: a
migration that passed, one over the threshold and one that failed are told apart by ``status``, never by
which keys are present. The report checks records against RECORD_FIELDS.
"""

from __future__ import annotations

from ansible_collections.openeuler.kae.plugins.module_utils import _trace, _validate

RECORD_FIELDS = (
    "round", "guest", "source", "destination", "status", "error", "outcome",
    "started_at", "duration_s",
    "downtime_ms", "raw_downtime_ms", "paused_at", "resumed_at", "profile",
    "clock_offset_ms", "clock_corrected",
    "libvirt_downtime_ms", "libvirt_downtime_net_ms", "libvirt_total_time_ms",
    "kae_vf_mapping", "threshold_ms",
    "network_downtime_ms", "probes_sent", "probes_lost", "probe_interval_ms", "probe_jitter_ms", "probe_from", "probe_error",
    "progress", "max_downtime_final_ms", "downtime_step", "limit", "suspended",
)
STATUSES = ("passed", "failed", "error")
# What build_record accepts: the steps' results by name.
STEP_KEYS = ("round", "guest", "source", "destination", "migration", "src_events", "dst_events", "remap",
             "clock_offset_ms", "profile", "threshold_ms", "error", "probe", "probe_from")
_REQUIRED_STEPS = ("guest", "source", "destination")
# live_migration's job keys and the record fields they fill.
# network_probe's result keys copied into the record as they are.
_PROBE_FIELDS = ("network_downtime_ms", "probes_sent", "probes_lost", "probe_interval_ms", "probe_jitter_ms")
NOT_PROBED = "not measured: no probe address for this guest"
_JOB_FIELDS = (("downtime_ms", "libvirt_downtime_ms"), ("downtime_net_ms", "libvirt_downtime_net_ms"),
               ("total_time_ms", "libvirt_total_time_ms"))


class RecordError(ValueError):
    """The steps cannot make a record (a caller's mistake, not a failed migration); the message says why."""


def empty_record():
    """A record with every field present and nothing known."""
    record = dict.fromkeys(RECORD_FIELDS)
    record.update(kae_vf_mapping={}, clock_corrected=False, progress=[])
    return record


def _check_steps(steps):
    try:
        _validate.mapping(steps, "the migration steps")
    except _validate.InputError as exc:
        raise RecordError(str(exc)) from None
    unknown = sorted(set(steps) - set(STEP_KEYS), key=str)
    if unknown:
        raise RecordError("unknown step key(s) %s; the keys are %s" % (", ".join(map(str, unknown)), ", ".join(STEP_KEYS)))
    try:
        for key in _REQUIRED_STEPS:
            _validate.text(steps.get(key), key)
        if steps.get("round") is not None:
            _validate.number(steps["round"], "round", minimum=1, integer=True)
        for key in ("clock_offset_ms", "threshold_ms"):
            if steps.get(key) is not None:
                _validate.number(steps[key], key)
        if steps.get("probe_from") is not None:
            _validate.text(steps["probe_from"], "probe_from")
        for key in ("migration", "remap", "probe"):
            if steps.get(key) is not None:
                _validate.mapping(steps[key], key)
    except _validate.InputError as exc:
        raise RecordError(str(exc)) from None
    return steps


def _from_migration(record, migration):
    """Timings, outcome and libvirt's figures from a live_migration result (a failed one included)."""
    record["started_at"] = migration.get("started_at")
    record["duration_s"] = migration.get("duration_s")
    record["outcome"] = migration.get("outcome")
    job = migration.get("job") if isinstance(migration.get("job"), dict) else {}
    for key, field in _JOB_FIELDS:
        record[field] = job.get(key)
    _convergence_fields(record, migration)


def _convergence_fields(record, migration):
    """The progress samples, the maximum downtime step the migration ended at, the limit that fired and the pause.

    The step is the index of the final value in the schedule's raises (0: the value it started with).
    """
    progress = migration.get("progress")
    record["progress"] = [dict(sample) for sample in progress if isinstance(sample, dict)] if isinstance(progress, list) else []
    record["max_downtime_final_ms"] = migration.get("max_downtime_final_ms")
    steps = migration.get("max_downtime_steps")
    if isinstance(steps, list) and steps:
        record["downtime_step"] = len(steps) - 1
    limit = migration.get("limit")
    record["limit"] = dict(limit) if isinstance(limit, dict) else None
    suspended = migration.get("suspended")
    if isinstance(suspended, dict):
        record["suspended"] = dict(suspended, paused_s=_paused_s(suspended.get("at_s"), record["duration_s"]))


def _paused_s(at_s, duration_s):
    """How long the guest stayed paused: from the pause to the end of the migration call (None when either is unknown)."""
    try:
        return round(max(0.0, float(duration_s) - float(at_s)), 3)
    except (TypeError, ValueError):
        return None


def _from_probe(record, probe, probe_from):
    """The network figures from a network_probe result (its async_status result), or why there are none."""
    if not probe or probe.get("skipped"):
        record["probe_error"] = NOT_PROBED
        return
    record["probe_from"] = probe_from
    for field in _PROBE_FIELDS:
        record[field] = probe.get(field)
    if probe.get("failed") or record["network_downtime_ms"] is None:
        record["probe_error"] = str(probe.get("msg") or "the probe gave no figure")


def _measure(record, steps):
    """Fill the trace figures; a TraceError becomes the record's error."""
    offset = steps.get("clock_offset_ms")
    try:
        found = _trace.latest_migration(steps.get("src_events") or [], steps.get("dst_events") or [],
                                        profile=steps.get("profile") or "auto", clock_offset_ms=offset or 0.0)
    except _trace.TraceError as exc:
        return str(exc)
    for key in ("downtime_ms", "raw_downtime_ms", "paused_at", "resumed_at", "profile"):
        record[key] = found[key]
    return None


def _verdict(downtime_ms, threshold_ms):
    """(status, error) of a measured downtime against the threshold (the trace pairing never gives a negative one)."""
    if threshold_ms is not None and downtime_ms > threshold_ms:
        return "failed", "downtime %s ms exceeds the %s ms threshold" % (downtime_ms, threshold_ms)
    return "passed", None


def build_record(steps):
    """The record of one migration from STEPS (a dict with the keys of STEP_KEYS; missing ones are unknown)."""
    _check_steps(steps)
    record = empty_record()
    for key in ("round", "guest", "source", "destination", "threshold_ms", "clock_offset_ms"):
        record[key] = steps.get(key)
    record["profile"] = steps.get("profile") or "auto"
    record["clock_corrected"] = steps.get("clock_offset_ms") is not None
    remap = steps.get("remap") or {}
    record["kae_vf_mapping"] = dict(remap.get("mapping") or {})
    if steps.get("migration"):
        _from_migration(record, steps["migration"])
    _from_probe(record, steps.get("probe"), steps.get("probe_from"))
    if steps.get("error"):
        record.update(status="error", error=str(steps["error"]))
        record["outcome"] = record["outcome"] or "unknown"
        return record
    problem = _measure(record, steps)
    if problem:
        record.update(status="error", error=problem)
    else:
        record["status"], record["error"] = _verdict(record["downtime_ms"], steps.get("threshold_ms"))
    record["outcome"] = record["outcome"] or "migrated"
    return record


def check_record(record, where="record"):
    """RecordError unless RECORD has exactly the contract's keys and a known status."""
    if not isinstance(record, dict):
        raise RecordError("%s must be a migration record (a dict), got %s" % (where, type(record).__name__))
    missing = [field for field in RECORD_FIELDS if field not in record]
    unknown = sorted((str(key) for key in record if key not in RECORD_FIELDS))
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing %s" % ", ".join(missing))
        if unknown:
            parts.append("unknown %s" % ", ".join(unknown))
        raise RecordError("%s is not a migration record (%s); build records with the openeuler.kae.migration_record filter"
                          % (where, "; ".join(parts)))
    if record["status"] not in STATUSES:
        raise RecordError("%s: status must be one of %s, got %r" % (where, ", ".join(STATUSES), record["status"]))
    return record
