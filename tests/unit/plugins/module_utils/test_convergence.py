# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _convergence as conv

MIB = 1024 * 1024


def stats(remaining_mib, dirty_pages_s=0, bps_mib=100, downtime=None, page_size=4096, **extra):
    """Active-job statistics as virDomainGetJobStats returns them (bytes, pages/s, ms)."""
    job = {"type": 2, "time_elapsed": 1234, "data_total": 512 * MIB, "data_processed": 700 * MIB,
           "data_remaining": int(remaining_mib * MIB), "memory_bps": bps_mib * MIB, "memory_dirty_rate": dirty_pages_s,
           "memory_page_size": page_size, "memory_iteration": 3}
    if downtime is not None:
        job["downtime"] = downtime
    job.update(extra)
    return job


def sample(t_s, remaining_mib, **kwargs):
    return conv.progress_sample(stats(remaining_mib, **kwargs), t_s)


class TestProgressSample:
    def test_converts_libvirt_units(self):
        got = conv.progress_sample(stats(100, dirty_pages_s=25600, bps_mib=300, downtime=340), 12.4)
        assert got["remaining_mib"] == 100.0
        assert got["total_mib"] == 512.0
        assert got["rate_mib_s"] == 300.0
        # 25600 pages/s of 4 KiB are 100 MiB/s.
        assert got["dirty_rate_mib_s"] == 100.0
        assert got["expected_downtime_ms"] == 340
        assert got["iteration"] == 3
        assert got["t_s"] == 12.4

    def test_uses_the_reported_page_size(self):
        assert sample(1, 10, dirty_pages_s=100, page_size=65536)["dirty_rate_mib_s"] == pytest.approx(6.25)

    def test_falls_back_to_memory_figures(self):
        job = {"memory_total": 64 * MIB, "memory_remaining": 8 * MIB, "memory_processed": 60 * MIB}
        got = conv.progress_sample(job, 1.0)
        assert (got["remaining_mib"], got["total_mib"], got["processed_mib"]) == (8.0, 64.0, 60.0)
        assert got["dirty_rate_mib_s"] is None and got["expected_downtime_ms"] is None

    def test_no_figures_yet_is_no_sample(self):
        assert conv.progress_sample({"type": 2, "time_elapsed": 5}, 0.1) is None
        assert conv.progress_sample(None, 0.1) is None

    def test_line_names_every_figure_and_unknowns(self):
        line = conv.progress_line("kae-guest", sample(2.0, 812, dirty_pages_s=25600 * 4.1, bps_mib=300, downtime=340), 100)
        assert line == ("kae-guest 2.0 s: 812.0 MiB of 512.0 MiB left, 300.0 MiB/s sent, dirty 410.0 MiB/s, iteration 3, "
                        "expected downtime 340 ms (limit 100 ms)")
        bare = conv.progress_sample({"memory_remaining": MIB}, 0.5)
        assert "? sent, dirty ?, iteration ?, expected downtime ?" in conv.progress_line("g", bare, 100)


class TestStallDetector:
    def test_a_new_minimum_is_progress(self):
        detector = conv.StallDetector(10)
        assert detector.update(sample(0, 500)) == 0
        assert detector.update(sample(4, 300)) == 0
        # A new pass re-reads dirtied memory: remaining rises, which is not progress, but not a stall yet either.
        assert detector.update(sample(8, 450)) == 4
        assert not detector.stalled(13.9)
        assert detector.stalled(14)

    def test_progress_resets_the_clock(self):
        detector = conv.StallDetector(5)
        for t_s, remaining in ((0, 500), (3, 500), (4.9, 500)):
            detector.update(sample(t_s, remaining))
        assert not detector.stalled(4.9)
        detector.update(sample(5.5, 499))
        assert not detector.stalled(10.4)
        assert detector.stalled(10.5)

    def test_no_timeout_never_stalls(self):
        detector = conv.StallDetector(None)
        detector.update(sample(0, 500))
        assert not detector.stalled(10 ** 6)


class TestLimits:
    def test_completion_limit_scales_with_memory(self):
        assert conv.completion_limit_s(2048, 150) == 300.0
        assert conv.completion_limit_s(192, 800) == 150.0
        assert conv.completion_limit_s(2048, None) is None

    def test_limits_in_reading_order(self):
        detector = conv.StallDetector(20)
        detector.update(sample(0, 100))
        assert conv.limit_reached(19.9, 300, 150, detector) is None
        assert conv.limit_reached(20, 300, 150, detector) == ("progress_timeout_s", 20)
        assert conv.limit_reached(150, 300, 150, detector) == ("completion_timeout_s_per_gib", 150)
        assert conv.limit_reached(300, 300, 150, detector) == ("timeout_s", 300)
        assert conv.limit_reached(400, None, None, conv.StallDetector(None)) is None

    def test_message_for_a_guest_that_cannot_converge(self):
        last = sample(30, 812, dirty_pages_s=25600 * 4.1, bps_mib=300, downtime=2700)
        msg = conv.limit_reason(("progress_timeout_s", 20), last, 100)
        assert msg == ("made no progress for progress_timeout_s 20 s (remaining 812 MiB, dirty rate "
                       "410 MiB/s above the 300 MiB/s sent: the migration cannot converge at 100 ms)")

    def test_message_when_the_rate_keeps_up_but_the_downtime_does_not(self):
        last = sample(30, 90, dirty_pages_s=25600, bps_mib=300, downtime=300)
        msg = conv.limit_reason(("completion_timeout_s_per_gib", 150.0), last, 100)
        assert msg == ("did not finish within 150.0 s (completion_timeout_s_per_gib scaled by its memory) (remaining 90 MiB, "
                       "dirty rate 100 MiB/s, 300 MiB/s sent, expected downtime 300 ms above the 100 ms allowed)")

    def test_message_without_any_sample(self):
        assert conv.limit_reason(("timeout_s", 5), None, 100) == "did not finish within timeout_s 5 s (QEMU reported no progress figures)"


class TestSchedule:
    def test_no_schedule_keeps_the_start(self):
        schedule = conv.DowntimeSchedule(100)
        assert schedule.values == [100]
        assert schedule.raise_due(10 ** 6, 0) is None
        assert schedule.current_ms == 100

    def test_time_mode_raises_every_delay_up_to_the_ceiling(self):
        schedule = conv.DowntimeSchedule(100, {"steps": 4, "delay_s": 10, "ceiling_ms": 500, "mode": "time"})
        assert schedule.values == [100, 200, 300, 400, 500]
        raised = [(t, schedule.raise_due(t, progress_at_s=t)) for t in range(0, 61, 5)]
        assert [(t, v) for t, v in raised if v is not None] == [(10, 200), (20, 300), (30, 400), (40, 500)]
        assert schedule.current_ms == 500
        assert [h["max_downtime_ms"] for h in schedule.history] == [100, 200, 300, 400, 500]

    def test_stall_mode_raises_only_without_progress(self):
        schedule = conv.DowntimeSchedule(100, {"steps": 2, "delay_s": 5, "ceiling_ms": 300, "mode": "stall"})
        # Progress at every poll up to 20 s: no raise.
        assert all(schedule.raise_due(t, progress_at_s=t) is None for t in range(0, 21))
        # Progress stops at 20 s: a raise 5 s later, the next 5 s after that raise.
        assert schedule.raise_due(24.9, 20) is None
        assert schedule.raise_due(25, 20) == 200
        assert schedule.raise_due(29.9, 20) is None
        assert schedule.raise_due(30, 20) == 300
        assert schedule.raise_due(100, 20) is None
        assert schedule.step == 2

    @pytest.mark.parametrize("schedule, needle", [
        ({"steps": 0, "delay_s": 5, "ceiling_ms": 300}, "downtime_schedule.steps must be greater than 0"),
        ({"steps": 2, "delay_s": 0, "ceiling_ms": 300}, "downtime_schedule.delay_s must be greater than 0"),
        ({"steps": 2, "delay_s": float("inf"), "ceiling_ms": 300}, "downtime_schedule.delay_s must be a finite number"),
        ({"steps": 2, "delay_s": 5}, "downtime_schedule.ceiling_ms must be a whole number, got NoneType"),
        ({"steps": 2, "delay_s": 5, "ceiling_ms": 100}, "ceiling_ms (100) must be above max_downtime_ms (100)"),
        ({"steps": 2, "delay_s": 5, "ceiling_ms": 300, "mode": "sometimes"}, "mode must be one of time, stall"),
    ])
    def test_schedule_problems(self, schedule, needle):
        assert any(needle in problem for problem in conv.schedule_problems(100, schedule))

    def test_good_schedule_and_none_have_no_problems(self):
        assert conv.schedule_problems(100, {"steps": 2, "delay_s": 5, "ceiling_ms": 300, "mode": "stall"}) == []
        assert conv.schedule_problems(100, None) == []


class TestEstimate:
    def test_an_idle_guest_converges_in_one_pass(self):
        got = conv.estimate(192, 35, 1024, 100)
        assert got["converges"] is True
        # 192 MiB first; the 6.6 MiB dirtied while sending them fit in 100 ms at 1024 MiB/s.
        assert got["iterations"] == 2
        assert got["final_transfer_mib"] == pytest.approx(35 * 192 / 1024.0, abs=0.001)
        assert got["expected_downtime_ms"] == pytest.approx(6.4, abs=0.1)
        assert got["text"].startswith("dirty rate 35.0 MiB/s, bandwidth 1024.0 MiB/s: converges; expected final transfer ~6.6 MiB")

    def test_a_guest_dirtying_faster_than_the_link_does_not_converge(self):
        got = conv.estimate(1024, 410, 300, 100)
        assert got["converges"] is False
        assert "does not converge at 100 ms" in got["text"] and "at most 30.0 MiB may remain" in got["text"]

    def test_a_guest_small_enough_converges_whatever_it_dirties(self):
        # 30 MiB can be sent in 100 ms at 300 MiB/s, so a 20 MiB guest stops at once.
        got = conv.estimate(20, 4000, 300, 100)
        assert got["converges"] is True and got["iterations"] == 1

    def test_slow_convergence_takes_many_passes(self):
        got = conv.estimate(4096, 280, 300, 100)
        assert got["converges"] is True
        assert got["iterations"] > 10

    def test_unknown_bandwidth_says_so(self):
        for bandwidth in (None, 0, conv.UNLIMITED_BANDWIDTH_MIB_S):
            got = conv.estimate(192, 35, bandwidth, 100)
            assert got["converges"] is None
            assert "bandwidth unknown" in got["text"]


class TestWatch:
    def test_samples_at_the_interval_and_raises_on_schedule(self):
        watch = conv.Watch(100, 2.0, 300, schedule={"steps": 2, "delay_s": 3, "ceiling_ms": 300, "mode": "time"})
        raised = []
        t_s = 0.0
        while t_s <= 8.0:
            if watch.sample_due(t_s):
                new = watch.observe(t_s, stats(500 - 10 * t_s))
                if new is not None:
                    raised.append((t_s, new))
            t_s = round(t_s + 0.5, 1)
        assert [s["t_s"] for s in watch.samples] == [0.0, 2.0, 4.0, 6.0, 8.0]
        # The schedule is looked at when a sample comes: due at 3 s and 6 s, applied at 4 s and 6 s.
        assert raised == [(4.0, 200), (6.0, 300)]
        assert [s["max_downtime_ms"] for s in watch.samples] == [100, 100, 100, 200, 300]
        assert watch.summary()["max_downtime_final_ms"] == 300

    def test_unreadable_statistics_are_no_progress(self):
        watch = conv.Watch(100, 1.0, 300, progress_timeout_s=5)
        watch.observe(0, stats(100))
        for t_s in range(1, 6):
            assert watch.observe(t_s, None) is None
        assert watch.limit(4.9) is None
        assert watch.limit(5) == ("progress_timeout_s", 5)
        assert watch.last["t_s"] == 0

    def test_a_long_migration_keeps_a_bounded_sample_list_end_to_end(self):
        watch = conv.Watch(100, 1.0, None)
        for t_s in range(2500):
            watch.observe(t_s, stats(100))
        assert len(watch.samples) <= conv.Watch.MAX_SAMPLES
        assert watch.samples[0]["t_s"] == 0 and watch.samples[-1]["t_s"] == 2499


class TestMeasuredDirtyRate:
    def test_only_a_finished_newer_measurement_counts(self):
        done = {"dirtyrate.calc_status": 2, "dirtyrate.calc_start_time": 26209, "dirtyrate.calc_period": 1,
                "dirtyrate.megabytes_per_second": 35}
        assert conv.measured_dirty_rate(done, None) == 35.0
        assert conv.measured_dirty_rate(done, 26100) == 35.0
        # The figures of the measurement that was there before asking.
        assert conv.measured_dirty_rate(done, 26209) is None
        assert conv.measured_dirty_rate(dict(done, **{"dirtyrate.calc_status": 1}), None) is None
        assert conv.measured_dirty_rate({}, None) is None
        assert conv.measured_dirty_rate(None, None) is None

    def test_start_of_the_last_measurement(self):
        assert conv.dirty_rate_start({"dirtyrate.calc_status": 0}) is None
        assert conv.dirty_rate_start({"dirtyrate.calc_start_time": 7}) == 7
        assert conv.dirty_rate_start(None) is None
