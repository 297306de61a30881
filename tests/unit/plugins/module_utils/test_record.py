# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _record
from ansible_collections.openeuler.kae.plugins.module_utils._record import RECORD_FIELDS, RecordError, build_record, check_record

# The published openEuler sample: 127.518 ms.
SRC = ["16465@1747835912.854818:all_vcpus_paused"]
DST = ["19688@1747835912.982336:all_vcpus_prepared"]
MIGRATION = {"started_at": 1747835911.5, "duration_s": 1.4, "outcome": "migrated",
             "job": {"downtime_ms": 130, "downtime_net_ms": 128, "total_time_ms": 1390}}


def steps(**extra):
    base = {"guest": "kae-guest", "source": "a", "destination": "b", "round": 1, "migration": MIGRATION,
            "src_events": SRC, "dst_events": DST, "threshold_ms": 200.0}
    base.update(extra)
    return base


def test_passed_record_carries_every_figure():
    record = build_record(steps(clock_offset_ms=0.5, remap={"mapping": {"0000:75:00.1": "0000:75:00.2"}}))
    assert record["status"] == "passed" and record["error"] is None and record["outcome"] == "migrated"
    assert record["downtime_ms"] == 127.018 and record["raw_downtime_ms"] == 127.518
    assert record["clock_corrected"] is True and record["clock_offset_ms"] == 0.5
    assert (record["libvirt_downtime_ms"], record["libvirt_downtime_net_ms"], record["libvirt_total_time_ms"]) == (130, 128, 1390)
    assert record["kae_vf_mapping"] == {"0000:75:00.1": "0000:75:00.2"}
    assert record["profile"] == "openeuler" and record["duration_s"] == 1.4


def test_without_clock_offset_the_record_says_uncorrected():
    record = build_record(steps())
    assert record["clock_corrected"] is False and record["clock_offset_ms"] is None
    assert record["downtime_ms"] == 127.518


def test_passed_failed_and_error_records_have_the_same_keys():
    passed = build_record(steps())
    over = build_record(steps(threshold_ms=100.0))
    failed = build_record(steps(migration=None, src_events=None, dst_events=None, error="migration failed: EOF"))
    unmeasured = build_record(steps(dst_events=[]))
    assert [r["status"] for r in (passed, over, failed, unmeasured)] == ["passed", "failed", "error", "error"]
    for record in (passed, over, failed, unmeasured):
        assert tuple(record) == RECORD_FIELDS
        check_record(record)
    assert "exceeds the 100.0 ms threshold" in over["error"]
    assert failed["error"] == "migration failed: EOF" and failed["outcome"] == "unknown"
    assert "destination" in unmeasured["error"]


def test_error_keeps_what_the_failed_migration_reported():
    aborted = dict(MIGRATION, outcome="aborted", job={})
    record = build_record(steps(migration=aborted, error="timeout after 300 s"))
    assert record["outcome"] == "aborted" and record["started_at"] == MIGRATION["started_at"]
    assert record["libvirt_downtime_ms"] is None


def test_resume_before_pause_by_the_corrected_clocks_is_an_error():
    record = build_record(steps(clock_offset_ms=500.0))
    assert record["status"] == "error" and "before the source paused" in record["error"]
    assert record["downtime_ms"] is None and record["clock_offset_ms"] == 500.0


@pytest.mark.parametrize("bad, message", [
    ([], "must be a mapping"),
    ({"guest": "g", "source": "a", "destination": "b", "rounds": 1}, "unknown step key"),
    ({"guest": "g", "source": "a"}, "destination must be a string"),
    ({"guest": "g", "source": "a", "destination": "b", "round": 0}, "round must be at least 1"),
    ({"guest": "g", "source": "a", "destination": "b", "clock_offset_ms": float("nan")}, "finite"),
    ({"guest": "g", "source": "a", "destination": "b", "threshold_ms": "200"}, "threshold_ms must be a number"),
    ({"guest": "g", "source": "a", "destination": "b", "migration": "done"}, "migration must be a mapping"),
])
def test_bad_steps_are_refused(bad, message):
    with pytest.raises(RecordError, match=message):
        build_record(bad)


def test_check_record_names_missing_and_unknown_keys():
    record = _record.empty_record()
    record["status"] = "passed"
    check_record(record)
    del record["downtime_ms"]
    record["downtime"] = 3
    with pytest.raises(RecordError, match="missing downtime_ms; unknown downtime"):
        check_record(record, "round 2")
    with pytest.raises(RecordError, match="status must be one of"):
        check_record(dict(_record.empty_record(), status="ok"))


PROBE = {"network_downtime_ms": 141.48, "probes_sent": 500, "probes_lost": 116, "probe_interval_ms": 1.0,
         "probe_jitter_ms": 4.252, "finished": 1, "changed": False}


def test_probe_figures_sit_beside_the_trace_and_libvirt_figures():
    record = build_record(steps(probe=PROBE, probe_from="controller"))
    assert (record["network_downtime_ms"], record["probes_sent"], record["probes_lost"]) == (141.48, 500, 116)
    assert (record["probe_interval_ms"], record["probe_jitter_ms"], record["probe_from"]) == (1.0, 4.252, "controller")
    assert record["probe_error"] is None and record["downtime_ms"] == 127.518 and record["status"] == "passed"


def test_a_guest_without_probe_address_is_measured_without_it_and_says_so():
    for probe in (None, {}, {"skipped": True, "changed": False}):
        record = build_record(steps(probe=probe, probe_from="controller"))
        assert record["status"] == "passed" and record["network_downtime_ms"] is None and record["probe_from"] is None
        assert record["probe_error"] == _record.NOT_PROBED


def test_a_failed_probe_keeps_its_reason_and_does_not_fail_the_migration():
    failed = {"failed": True, "msg": "probing 10.0.0.9: 0 of 300 probes were answered", "probes_sent": 300}
    record = build_record(steps(probe=failed, probe_from="controller"))
    assert record["status"] == "passed" and record["network_downtime_ms"] is None
    assert record["probe_error"] == failed["msg"] and record["probe_from"] == "controller"
    check_record(record)


def test_probe_step_must_be_a_result():
    with pytest.raises(RecordError, match="probe must be"):
        build_record(steps(probe="fast"))


SAMPLES = [{"t_s": 2.0, "remaining_mib": 120.5, "max_downtime_ms": 100}, {"t_s": 4.0, "remaining_mib": 30.0, "max_downtime_ms": 250}]


def test_the_record_keeps_the_progress_and_the_step_the_migration_converged_at():
    stepped = dict(MIGRATION, progress=SAMPLES, max_downtime_final_ms=250,
                   max_downtime_steps=[{"t_s": 0.0, "max_downtime_ms": 100}, {"t_s": 3.0, "max_downtime_ms": 250}],
                   limit=None, suspended=None)
    record = build_record(steps(migration=stepped))
    assert record["progress"] == SAMPLES and record["progress"][0] is not SAMPLES[0]
    assert (record["max_downtime_final_ms"], record["downtime_step"]) == (250, 1)
    assert record["limit"] is None and record["suspended"] is None
    check_record(record)


def test_an_aborted_record_names_the_limit_that_fired():
    limit = {"name": "progress_timeout_s", "value_s": 20.0, "at_s": 21.9}
    aborted = dict(MIGRATION, outcome="aborted", job={}, duration_s=33.5, progress=SAMPLES, limit=limit,
                   max_downtime_final_ms=100, max_downtime_steps=[{"t_s": 0.0, "max_downtime_ms": 100}])
    record = build_record(steps(migration=aborted, error="Migrate the guest: made no progress for progress_timeout_s 20 s"))
    assert record["status"] == "error" and record["limit"] == limit and record["downtime_step"] == 0
    assert len(record["progress"]) == 2


def test_a_suspended_migration_says_how_long_the_guest_stayed_paused():
    suspended = dict(MIGRATION, duration_s=40.25, suspended={"at_s": 31.0, "limit": "progress_timeout_s", "resumed_by": "libvirt"})
    record = build_record(steps(migration=suspended))
    assert record["suspended"] == {"at_s": 31.0, "limit": "progress_timeout_s", "resumed_by": "libvirt", "paused_s": 9.25}
    unknown = build_record(steps(migration=dict(suspended, duration_s=None)))
    assert unknown["suspended"]["paused_s"] is None


def test_without_a_migration_the_convergence_fields_are_empty():
    record = build_record(steps(migration=None, error="Migrate the guest: no libvirt"))
    assert (record["progress"], record["max_downtime_final_ms"], record["downtime_step"], record["limit"], record["suspended"]) == (
        [], None, None, None, None)
    odd = build_record(steps(migration=dict(MIGRATION, progress="not a list", limit="x", suspended=[1])))
    assert (odd["progress"], odd["limit"], odd["suspended"]) == ([], None, None)
