# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _trace
from ansible_collections.openeuler.kae.plugins.module_utils._trace import TraceError, latest_migration, migrations, parse_events, parse_line

# The openEuler 22.03 LTS SP4 test report's sample.
OPENEULER_SRC = "16465@1747835912.854818:all_vcpus_paused"
OPENEULER_DST = "19688@1747835912.982336:all_vcpus_prepared"

# One managed migration in the lab (upstream QEMU 7.2), as logged on each host.
LAB_SRC = """\
2026-11-25 18:04:53.027+0000: initiating migration
219@1795629893.031141:migration_thread_setup_complete
219@1795629893.037357:runstate_set current_run_state 9 (running) new_state 7 (finish-migrate)
219@1795629893.041251:vm_state_notify running 0 reason 7 (finish-migrate)
219@1795629893.041332:migration_completion_vm_stop ret 0
219@1795629893.049619:migrate_set_state new state completed
219@1795629893.049753:runstate_set current_run_state 7 (finish-migrate) new_state 5 (postmigrate)
2026-11-25 18:04:53.063+0000: shutting down, reason=migrated
"""
LAB_DST = """\
301@1795629893.027699:migration_socket_incoming_accepted
301@1795629893.049435:process_incoming_migration_co_end ret=0 postcopy-state=0
301@1795629893.049451:runstate_set current_run_state 1 (inmigrate) new_state 4 (paused)
301@1795629893.054965:runstate_set current_run_state 4 (paused) new_state 9 (running)
301@1795629893.054982:vm_state_notify running 1 reason 9 (running)
"""

# QEMU 7.2 migrating between two processes on one machine (QMP migrate, then cont on the destination).
QEMU72_SRC = """\
28770@1795632038.438890:runstate_set current_run_state 6 (prelaunch) new_state 9 (running)
28770@1795632038.440284:vm_state_notify running 1 reason 9 (running)
28894@1795632039.373787:runstate_set current_run_state 9 (running) new_state 7 (finish-migrate)
28894@1795632039.373880:vm_state_notify running 0 reason 7 (finish-migrate)
28894@1795632039.375504:runstate_set current_run_state 7 (finish-migrate) new_state 5 (postmigrate)
"""
QEMU72_DST = """\
28776@1795632039.388619:runstate_set current_run_state 1 (inmigrate) new_state 4 (paused)
28776@1795632039.420672:runstate_set current_run_state 4 (paused) new_state 9 (running)
28776@1795632039.420702:vm_state_notify running 1 reason 9 (running)
28776@1795632039.723049:runstate_set current_run_state 9 (running) new_state 11 (shutdown)
28776@1795632039.723139:vm_state_notify running 0 reason 11 (shutdown)
"""

# Host A: boot, migration 1 to B, back from B (migration 2), a suspend/resume, migration 3 to B.
HOST_A = """\
2026-11-25 17:00:00.000+0000: starting up libvirt version: 9.0.0, qemu version: 7.2.0
LC_ALL=C /usr/bin/qemu-system-x86_64 -name guest=kae-guest -msg timestamp=on --trace vm_state_notify
100@1795626000.100000:vm_state_notify running 1 reason 9 (running)
2026-11-25 17:10:00.400+0000: initiating migration
100@1795626600.510000:vm_state_notify running 0 reason 7 (finish-migrate)
2026-11-25 17:10:00.600+0000: shutting down, reason=migrated

2026-11-25 17:20:00.000+0000: starting up libvirt version: 9.0.0, qemu version: 7.2.0
200@1795627200.700000:vm_state_notify running 1 reason 9 (running)
200@1795627500.000000:vm_state_notify running 0 reason 4 (pause)
200@1795627501.000000:vm_state_notify running 1 reason 9 (running)
200@1795627800.300000:vm_state_notify running 0 reason 7 (finish-migrate)
2026-11-25 17:30:00.400+0000: shutting down, reason=migrated
"""
HOST_B = """\
2026-11-25 17:10:00.000+0000: starting up libvirt version: 9.0.0, qemu version: 7.2.0
300@1795626600.530000:vm_state_notify running 1 reason 9 (running)
300@1795627200.650000:vm_state_notify running 0 reason 7 (finish-migrate)
2026-11-25 17:20:00.800+0000: shutting down, reason=migrated
2026-11-25 17:29:59.000+0000: starting up libvirt version: 9.0.0, qemu version: 7.2.0
400@1795627800.345678:vm_state_notify running 1 reason 9 (running)
"""


def test_parse_line_reads_tid_time_name_and_args():
    assert parse_line("219@1795629893.041251:vm_state_notify running 0 reason 7 (finish-migrate)\n") == {
        "ts": 1795629893.041251, "tid": 219, "name": "vm_state_notify", "args": "running 0 reason 7 (finish-migrate)"}


def test_parse_line_takes_an_event_without_arguments_and_qemus_trailing_space():
    assert parse_line(b"16465@1747835912.854818:all_vcpus_paused \n") == {
        "ts": 1747835912.854818, "tid": 16465, "name": "all_vcpus_paused", "args": ""}


@pytest.mark.parametrize("line", [
    "",
    "   ",
    "2026-11-25 18:04:53.027+0000: initiating migration",
    "LC_ALL=C /usr/bin/qemu-system-x86_64 -name guest=kae-guest",
    "219@1795629893.0412",                      # partial last line, cut in the time
    "219@1795629893.041251",                    # cut before the name
    "219@1795629893.04125:vm_state_notify",     # five decimals: not QEMU's format
    "abc@1795629893.041251:vm_state_notify",
    "\x00\xff garbage @ 12.345678:",
])
def test_parse_line_ignores_everything_that_is_not_a_trace_line(line):
    assert parse_line(line) is None


def test_every_logged_microsecond_survives_parsing_and_subtraction():
    for usec in range(0, 1000000, 7919):
        event = parse_line("1@2147483000.%06d:all_vcpus_paused" % usec)
        assert Decimal(repr(event["ts"])) == Decimal("2147483000.%06d" % usec)
        resumed = (usec * 31) % 1000000
        downtime = latest_migration([event], "2@2147483001.%06d:all_vcpus_prepared" % resumed)["downtime_ms"]
        assert downtime == float(Decimal(1000000 + resumed - usec) / 1000)


def test_parse_events_skips_libvirt_lines_and_accepts_text_lines_or_events():
    from_text = parse_events(LAB_SRC)
    assert [event["name"] for event in from_text][:2] == ["migration_thread_setup_complete", "runstate_set"]
    assert len(from_text) == 6
    assert parse_events(LAB_SRC.splitlines()) == from_text
    assert parse_events(from_text) == from_text
    assert parse_events({"events": from_text, "next_offset": 10}) == from_text


def test_parse_events_normalises_event_dicts():
    events = parse_events([{"ts": "1747835912.854818", "name": "all_vcpus_paused"}])
    assert events == [{"ts": 1747835912.854818, "tid": 0, "name": "all_vcpus_paused", "args": ""}]


@pytest.mark.parametrize("log, expected", [
    (None, "expected the log to be the text of a QEMU log, a list of its lines or a list of events, got NoneType None"),
    (42, "got int 42"),
    ([1.5], "expected the log to hold lines (strings) or events (dicts), got float 1.5"),
    ([{"name": "x"}], "expected each event of the log to be a dict with 'ts' (epoch seconds), 'name' and optionally 'tid'"),
    ([{"ts": "soon", "name": "x"}], "got dict {'ts': 'soon', 'name': 'x'}"),
    ([{"ts": float("inf"), "name": "x"}], "got dict {'ts': inf, 'name': 'x'}"),
    ([{"ts": 1.5, "name": "x", "tid": "main"}], "got dict {'ts': 1.5, 'name': 'x', 'tid': 'main'}"),
])
def test_parse_events_rejects_what_is_not_a_log(log, expected):
    with pytest.raises(TraceError, match=re.escape(expected)):
        parse_events(log)


def test_published_openeuler_sample_is_exactly_127_518_ms():
    result = latest_migration(OPENEULER_SRC, OPENEULER_DST)
    assert result["downtime_ms"] == 127.518
    assert result["raw_downtime_ms"] == 127.518
    assert result["profile"] == "openeuler"
    assert result["paused_at"] == 1747835912.854818
    assert result["resumed_at"] == 1747835912.982336
    assert result["src_event"]["tid"] == 16465
    assert result["dst_event"]["name"] == "all_vcpus_prepared"
    assert result["clock_offset_ms"] == 0.0


def test_lab_upstream_sample_pairs_vm_state_notify_events():
    result = latest_migration(LAB_SRC, LAB_DST)
    assert result["profile"] == "upstream"
    assert result["downtime_ms"] == 13.731
    assert result["src_event"]["args"] == "running 0 reason 7 (finish-migrate)"
    assert result["dst_event"]["ts"] == 1795629893.054982


def test_real_qemu_output_ignores_the_destinations_later_shutdown():
    result = latest_migration(QEMU72_SRC, QEMU72_DST)
    assert (result["profile"], result["downtime_ms"]) == ("upstream", 46.822)


def test_auto_prefers_openeuler_when_both_vocabularies_are_in_the_source_log():
    src = LAB_SRC + "219@1795629893.041300:all_vcpus_paused \n"
    dst = LAB_DST + "301@1795629893.055000:all_vcpus_prepared \n"
    assert latest_migration(src, dst)["profile"] == "openeuler"
    assert latest_migration(src, dst)["downtime_ms"] == 13.7
    assert latest_migration(src, dst, profile="upstream")["downtime_ms"] == 13.731


def test_downtime_checkpoint_profile_is_one_table_row():
    src = ["500@1800000000.100000:vmstate_downtime_checkpoint src-downtime-start",
           "500@1800000000.101000:vmstate_downtime_checkpoint src-vm-stopped"]
    dst = ["600@1800000000.120000:vmstate_downtime_checkpoint dst-precopy-bh-enter",
           "600@1800000000.125500:vmstate_downtime_checkpoint dst-precopy-bh-vm-started"]
    assert latest_migration(src, dst, profile="downtime_checkpoint")["downtime_ms"] == 25.5
    assert "downtime_checkpoint" in _trace.PROFILE_BY_NAME
    assert _trace.profile_event_names("downtime_checkpoint") == ["vmstate_downtime_checkpoint"]


def test_profile_event_names_of_auto_cover_openeuler_and_upstream():
    assert _trace.profile_event_names() == ["all_vcpus_paused", "all_vcpus_prepared", "vm_state_notify"]


def test_latest_of_several_boots_and_migrations_is_the_default():
    result = latest_migration(HOST_A, HOST_B)
    assert result["downtime_ms"] == 45.678
    assert result["paused_at"] == 1795627800.3


def test_all_migrations_oldest_first_skip_boots_suspends_and_the_other_direction():
    found = migrations(HOST_A, HOST_B)
    assert [(item["paused_at"], item["downtime_ms"]) for item in found] == [(1795626600.51, 20.0), (1795627800.3, 45.678)]
    # The opposite direction is migration 2, from B to A.
    assert [item["downtime_ms"] for item in migrations(HOST_B, HOST_A)] == [50.0]


def test_only_the_latest_of_several_pauses_before_one_resume_is_the_migration():
    # A suspend on the source (same openEuler event) before the migration must not be paired.
    src = ["1@1800000000.000000:all_vcpus_paused", "1@1800000005.000000:all_vcpus_paused"]
    dst = ["2@1799999000.000000:all_vcpus_prepared", "2@1800000005.150000:all_vcpus_prepared"]
    found = migrations(src, dst)
    assert [item["downtime_ms"] for item in found] == [150.0]


def test_clock_offset_is_subtracted_from_the_downtime():
    result = latest_migration(OPENEULER_SRC, OPENEULER_DST, clock_offset_ms=27.518)
    assert result["downtime_ms"] == 100.0
    assert result["raw_downtime_ms"] == 127.518
    assert result["clock_offset_ms"] == 27.518
    assert result["resumed_at"] == 1747835912.954818
    assert latest_migration(OPENEULER_SRC, OPENEULER_DST, clock_offset_ms="-2.5")["downtime_ms"] == 130.018


def test_clock_offset_decides_which_resume_follows_the_pause():
    # The destination clock runs 100 ms behind: its resume is logged "before" the pause.
    src = ["1@1800000000.500000:all_vcpus_paused"]
    dst = ["2@1800000000.450000:all_vcpus_prepared"]
    assert latest_migration(src, dst, clock_offset_ms=-100)["downtime_ms"] == 50.0


def test_destination_resuming_before_the_source_paused_says_by_how_much_and_why():
    dst = ["19688@1747835912.800000:all_vcpus_prepared"]
    with pytest.raises(TraceError) as caught:
        latest_migration(OPENEULER_SRC, dst)
    message = str(caught.value)
    assert "the destination resumed ('all_vcpus_prepared' at 1747835912.8) 54.818 ms before the source paused" in message
    assert "clocks disagree" in message and "clock_offset_ms" in message
    with pytest.raises(TraceError, match="54.818 ms before"):
        migrations(OPENEULER_SRC, dst)


def test_clock_correction_can_also_reveal_a_resume_before_the_pause():
    with pytest.raises(TraceError, match=r"22.482 ms before the source paused .* after correcting by clock_offset_ms 150.0"):
        latest_migration(OPENEULER_SRC, OPENEULER_DST, clock_offset_ms=150)


def test_latest_source_pause_without_resume_is_an_error_not_an_older_answer():
    src = HOST_A + "200@1795628000.000000:vm_state_notify running 0 reason 7 (finish-migrate)\n"
    with pytest.raises(TraceError, match="read before the migration finished"):
        latest_migration(src, HOST_B)
    assert len(migrations(src, HOST_B)) == 2


@pytest.mark.parametrize("profile, event, hint", [
    ("openeuler", "all_vcpus_paused", "<qemu:arg value='all_vcpus*'/>"),
    ("upstream", "vm_state_notify running 0 reason N (finish-migrate)", "<qemu:arg value='vm_state_notify'/>"),
    ("downtime_checkpoint", "vmstate_downtime_checkpoint src-downtime-start", "QEMU 8.2 or later"),
])
def test_missing_source_event_names_it_with_the_profile_hint(profile, event, hint):
    with pytest.raises(TraceError) as caught:
        latest_migration("2026-11-25 18:04:53.027+0000: starting up\n", LAB_DST, profile=profile)
    message = str(caught.value)
    assert message.startswith("the source log has no '%s' event (profile %s). " % (event, profile))
    assert hint in message


@pytest.mark.parametrize("profile, src, event", [
    ("openeuler", OPENEULER_SRC, "all_vcpus_prepared"),
    ("upstream", LAB_SRC, "vm_state_notify running 1 reason N (running)"),
])
def test_missing_destination_event_names_it(profile, src, event):
    with pytest.raises(TraceError, match="^" + re.escape("the destination log has no '%s' event (profile %s)" % (event, profile))):
        latest_migration(src, LAB_SRC, profile=profile)


def test_auto_without_any_known_source_event_lists_what_each_profile_needs():
    with pytest.raises(TraceError) as caught:
        migrations(LAB_DST, LAB_DST)
    message = str(caught.value)
    assert "for any profile that 'auto' tries" in message
    assert "Profile openeuler needs 'all_vcpus_paused'" in message
    assert "Profile upstream needs 'vm_state_notify running 0 reason N (finish-migrate)'" in message


@pytest.mark.parametrize("kwargs, expected", [
    ({"profile": "qemu9"}, "unknown profile 'qemu9': choose one of auto, openeuler, upstream, downtime_checkpoint"),
    ({"clock_offset_ms": "fast"}, "clock_offset_ms must be a finite number of milliseconds"),
    ({"clock_offset_ms": float("nan")}, "clock_offset_ms must be a finite number of milliseconds"),
    ({"clock_offset_ms": True}, "clock_offset_ms must be a finite number of milliseconds (destination clock minus source clock) "
                                "between -86400000 and 86400000 (one day), got bool True"),
    ({"clock_offset_ms": "1e999"}, "clock_offset_ms must be a finite number of milliseconds"),
    ({"clock_offset_ms": "1e99999999"}, "clock_offset_ms must be a finite number of milliseconds"),
    ({"clock_offset_ms": 1e300}, "clock_offset_ms must be a finite number of milliseconds"),
    ({"clock_offset_ms": "\u0661\u0662"}, "clock_offset_ms must be a finite number of milliseconds"),
    ({"clock_offset_ms": [1]}, "clock_offset_ms must be a finite number of milliseconds"),
])
def test_bad_arguments_are_named(kwargs, expected):
    with pytest.raises(TraceError, match="^" + re.escape(expected)):
        latest_migration(OPENEULER_SRC, OPENEULER_DST, **kwargs)


def test_bad_log_type_names_the_side():
    with pytest.raises(TraceError, match="expected the destination log to be the text of a QEMU log"):
        latest_migration(OPENEULER_SRC, 12)


# Host A's log with the guest starting there, going to B (migration 1), coming back, and going to B again
# (migration 2); host B's resumes of both, each 20 ms after the pause on a common clock.
HOST_A_TWICE = [
    "100@1800000100.000000:vm_state_notify running 1 reason 9 (running)",
    "100@1800000200.000000:vm_state_notify running 0 reason 7 (finish-migrate)",
    "200@1800000300.000000:vm_state_notify running 1 reason 9 (running)",
    "200@1800000400.000000:vm_state_notify running 0 reason 7 (finish-migrate)",
]
HOST_B_TWICE = [
    "300@1800000200.020000:vm_state_notify running 1 reason 9 (running)",
    "400@1800000400.020000:vm_state_notify running 1 reason 9 (running)",
]


def test_every_migration_of_two_whole_logs_with_the_source_coming_back_between():
    assert [item["downtime_ms"] for item in migrations(HOST_A_TWICE, HOST_B_TWICE)] == [20.0, 20.0]


def test_an_offset_that_puts_an_earlier_resume_before_its_pause_is_an_error_naming_that_migration():
    # 25 ms of correction moves migration 1's resume 5 ms before its pause; migration 2 would still pair.
    with pytest.raises(TraceError) as caught:
        migrations(HOST_A_TWICE, HOST_B_TWICE, clock_offset_ms=25)
    message = str(caught.value)
    assert message.startswith("the destination resumed ('vm_state_notify running 1 reason N (running)' at 1800000200.02) 5.0 ms "
                              "before the source paused for the migration at 1800000200.0 (pause 1 of 2 in the source log) "
                              "after correcting by clock_offset_ms 25.0, and after the source's previous event")
    assert "clocks disagree" in message


def test_a_pause_is_never_paired_with_a_resume_after_the_source_ran_the_guest_again():
    # Migration 1 to B; back on A; an attempt at 400 that failed (A runs the guest again at 400.5); much later the
    # guest is started on B. That start is no resume of the attempt.
    src = HOST_A_TWICE + ["200@1800000400.500000:vm_state_notify running 1 reason 9 (running)"]
    dst = ["300@1800000200.020000:vm_state_notify running 1 reason 9 (running)",
           "500@1800000600.000000:vm_state_notify running 1 reason 9 (running)"]
    assert [item["paused_at"] for item in migrations(src, dst)] == [1800000200.0]
    with pytest.raises(TraceError) as caught:
        latest_migration(src, dst)
    assert str(caught.value) == (
        "the source paused ('vm_state_notify running 0 reason N (finish-migrate)' at 1800000400.0 (pause 2 of 2 in the source log)) "
        "and then ran the guest again ('vm_state_notify running 1 reason N (running)' at 1800000400.5) before any destination "
        "resume, so that migration did not complete (it failed or was aborted after the pause) and has no downtime to measure.")


def test_a_failed_attempt_alone_is_no_migration():
    src = ["1@1800000000.000000:vm_state_notify running 0 reason 7 (finish-migrate)",
           "1@1800000000.300000:vm_state_notify running 1 reason 9 (running)"]
    dst = ["2@1800000900.000000:vm_state_notify running 1 reason 9 (running)"]
    for measure in (migrations, latest_migration):
        with pytest.raises(TraceError, match="did not complete"):
            measure(src, dst)


def test_a_resume_on_the_destination_while_the_guest_ran_on_the_source_is_not_taken_for_a_later_migration():
    # B resumes at 250 while A still runs the guest (between A's restart at 100 and its pause at 200): either the
    # clocks are 50 s apart or the guest ran twice; the later unrelated resume at 260 is not taken instead.
    src = HOST_A_TWICE[:2]
    dst = ["300@1800000150.000000:vm_state_notify running 1 reason 9 (running)",
           "300@1800000260.000000:vm_state_notify running 1 reason 9 (running)"]
    for measure in (migrations, latest_migration):
        with pytest.raises(TraceError, match="50000.0 ms before the source paused for the migration at 1800000200.0, and after"):
            measure(src, dst)


@pytest.mark.parametrize("line", [
    "\u0661\u0662@1795629893.041251:vm_state_notify running 0 reason 7 (finish-migrate)",   # Arabic-Indic digits
    "12@\u0661795629893.041251:vm_state_notify running 0 reason 7 (finish-migrate)",
    "12@" + "9" * 400 + ".041251:vm_state_notify running 0 reason 7 (finish-migrate)",        # no float can hold it
    "12@1795629893.041251:vm_st\u00e4te running 0",
])
def test_parse_line_takes_ascii_trace_lines_only(line):
    assert parse_line(line) is None


@pytest.mark.parametrize("event", [
    {"ts": "1e99999999", "name": "x"},
    {"ts": 1e300, "name": "x"},
    {"ts": -1, "name": "x"},
    {"ts": "\u0661\u0662", "name": "x"},
    {"ts": 1.5, "name": "x", "tid": "\u00b2"},
    {"ts": 1.5, "name": "x", "tid": True},
    {"ts": 1.5, "name": "x", "tid": -3},
    {"ts": 1.5, "name": None},
])
def test_parse_events_refuses_event_dicts_no_clock_can_have(event):
    with pytest.raises(TraceError, match="expected each event of the log to be a dict with 'ts'"):
        parse_events([event])


def test_has_pause_looks_for_the_source_event_of_the_profile():
    upstream = parse_events("219@1795629893.041251:vm_state_notify running 0 reason 7 (finish-migrate)\n")
    resumed = parse_events("301@1795629893.054982:vm_state_notify running 1 reason 9 (running)\n")
    openeuler = parse_events("16465@1747835912.854818:all_vcpus_paused\n")
    assert _trace.has_pause(upstream) and _trace.has_pause(openeuler) and _trace.has_pause(upstream, "upstream")
    assert not _trace.has_pause(resumed) and not _trace.has_pause(openeuler, "upstream") and not _trace.has_pause([])
