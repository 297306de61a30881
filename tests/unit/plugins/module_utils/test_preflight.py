# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_preflight on QMP replies and QEMU log excerpts recorded in the lab (QEMU 7.2, libvirt 9.0)."""

from __future__ import annotations

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _preflight
from ansible_collections.openeuler.kae.plugins.module_utils._preflight import PreflightError
from ansible_collections.openeuler.kae.plugins.module_utils._trace import profile_event_names

QEMU_7_2 = 7002022
IVSHMEM = "Migration is disabled when using feature 'peer mode' in device 'ivshmem'"

# Replies of QEMU 7.2 through libvirt_qemu.qemuMonitorCommand, as recorded.
REPLY_BLOCKED = '{"return":{"blocked-reasons":["%s"]},"id":"libvirt-411"}' % IVSHMEM
REPLY_FREE = '{"return":{},"id":"libvirt-411"}'
REPLY_MIGRATING = '{"return":{"status":"active","setup-time":2},"id":"libvirt-12"}'
REPLY_ENABLED = '{"return":[{"name":"vm_state_notify","vcpu":false,"state":"enabled"}],"id":"libvirt-412"}'
REPLY_DISABLED = '{"return":[{"name":"vm_state_notify","vcpu":false,"state":"disabled"}],"id":"libvirt-412"}'
REPLY_UNKNOWN = '{"id":"libvirt-413","error":{"class":"GenericError","desc":"unknown event \\"all_vcpus_paused\\""}}'
REPLY_NO_MATCH = '{"return":[],"id":"libvirt-414"}'

START_1 = ("2026-12-02 15:21:23.316+0000: starting up libvirt version: 9.0.0, package: 9.0.0-4+deb12u2 (Debian), "
           "qemu version: 7.2.22Debian 1:7.2+dfsg-7+deb12u18+b3, kernel: 6.18.44-fc-v1045, hostname: kae-lab-b\n")
START_2 = START_1.replace("15:21:23.316", "15:21:42.185")
COMMAND_LINE = ("LC_ALL=C \\\nPATH=/usr/sbin:/usr/bin:/sbin:/bin \\\n/usr/bin/qemu-system-x86_64 \\\n-name guest=kae-pf-exp,debug-threads=on \\\n"
                "-S \\\n--trace vm_state_notify \\\n--trace all_vcpus_paused \\\n-msg timestamp=on\n")
TAINTED = "2026-12-02 15:21:23.320+0000: Domain id=1 is tainted: custom-argv\n"
WARNING = "qemu-system-x86_64: --trace all_vcpus_paused: warning: trace event 'all_vcpus_paused' does not exist\n"
RESUMED = "76@1796224884.449519:vm_state_notify running 1 reason 9 (running)\n"
STOPPED = ("2026-12-02T15:21:25.497302Z qemu-system-x86_64: terminating on signal 15 from pid 8 (/usr/sbin/libvirtd)\n"
           "76@1796224885.497611:vm_state_notify running 0 reason 11 (shutdown)\n"
           "2026-12-02 15:21:25.697+0000: shutting down, reason=destroyed\n")
MONITOR = "2026-12-02 15:21:25.455+0000: Domain id=1 is tainted: custom-monitor\n"
OTHER_EVENT = "219@1795629893.037357:runstate_set current_run_state 9 (running) new_state 7 (finish-migrate)\n"

# The first process was started, resumed and destroyed; the second is running.
TWO_PROCESSES = START_1 + COMMAND_LINE + TAINTED + WARNING + RESUMED + MONITOR + STOPPED + START_2 + COMMAND_LINE + TAINTED + WARNING
UPSTREAM = profile_event_names("upstream")
AUTO = profile_event_names("auto")


def write(tmp_path, text, name="kae-guest.log"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


# --------------------------------------------------------------------------- QMP


def test_qmp_command_is_one_json_object():
    assert _preflight.qmp_command("query-migrate") == '{"execute": "query-migrate"}'
    assert _preflight.qmp_command("trace-event-get-state", {"name": "vm_state_notify"}) == (
        '{"arguments": {"name": "vm_state_notify"}, "execute": "trace-event-get-state"}')


def test_qmp_reply_return_and_error():
    assert _preflight.qmp_reply(REPLY_FREE, "query-migrate") == ({}, None)
    assert _preflight.qmp_reply(REPLY_UNKNOWN, "trace-event-get-state") == (None, 'unknown event "all_vcpus_paused"')


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"id": "libvirt-1"}', '{"error": "flat"}', "null"])
def test_qmp_reply_refuses_what_is_no_reply(text):
    with pytest.raises(PreflightError, match="QEMU's reply to query-migrate is not a QMP reply"):
        _preflight.qmp_reply(text, "query-migrate")


def test_blocked_reasons_are_qemus_words():
    answer, _error = _preflight.qmp_reply(REPLY_BLOCKED, "query-migrate")
    assert _preflight.blocked_reasons(answer, QEMU_7_2) == [IVSHMEM]


def test_no_blocked_reasons_on_a_qemu_that_reports_them_means_migratable():
    assert _preflight.blocked_reasons({}, QEMU_7_2) == []
    assert _preflight.blocked_reasons({"status": "completed"}, 6000000) == []


def test_a_qemu_older_than_6_0_cannot_be_asked():
    with pytest.raises(PreflightError, match=r"QEMU 5\.2\.0 does not report migration blockers .*from QEMU 6\.0"):
        _preflight.blocked_reasons({}, 5002000)


def test_bare_blocked_flag_is_a_refusal():
    assert _preflight.blocked_reasons({"blocked": True}, 6000000) == ["QEMU reports the migration blocked without giving a reason"]


@pytest.mark.parametrize("answer", [[], "x", {"blocked-reasons": "one"}, {"blocked-reasons": [1]}])
def test_malformed_query_migrate_is_an_error(answer):
    with pytest.raises(PreflightError):
        _preflight.blocked_reasons(answer, QEMU_7_2)


@pytest.mark.parametrize("reply, expected", [(REPLY_MIGRATING, "active"), (REPLY_FREE, None),
                                             ('{"return":{"status":"completed"}}', None), ('{"return":{"status":"failed"}}', None)])
def test_migration_in_progress(reply, expected):
    assert _preflight.migration_in_progress(_preflight.qmp_reply(reply, "query-migrate")[0]) == expected


@pytest.mark.parametrize("reply, state", [(REPLY_ENABLED, "enabled"), (REPLY_DISABLED, "disabled"), (REPLY_UNKNOWN, "unknown"),
                                          (REPLY_NO_MATCH, "unknown")])
def test_event_state_from_recorded_replies(reply, state):
    assert _preflight.event_state(*_preflight.qmp_reply(reply, "trace-event-get-state")) == state


# --------------------------------------------------------------------------- the current process's part of the log


def test_event_of_the_current_process_is_found(tmp_path):
    path = write(tmp_path, START_1 + COMMAND_LINE + RESUMED + MONITOR)
    scan = _preflight.scan_current_process(path, UPSTREAM, 1 << 20, chunk_size=64)
    assert scan["event"] == {"ts": 1796224884.449519, "tid": 76, "name": "vm_state_notify", "args": "running 1 reason 9 (running)"}
    # Found before reaching the start line: the read stopped there.
    assert scan["started"] is None and scan["bytes_read"] < len(START_1 + COMMAND_LINE + RESUMED + MONITOR)


def test_an_earlier_process_event_does_not_count(tmp_path):
    path = write(tmp_path, TWO_PROCESSES)
    scan = _preflight.scan_current_process(path, UPSTREAM, 1 << 20)
    assert scan["event"] is None
    assert scan["started"] == "2026-12-02 15:21:42.185+0000" and scan["complete"] is True
    assert scan["warnings"] == [WARNING.strip()]
    assert scan["ended"] is None and scan["other_event"] is False


def test_an_unfinished_last_line_is_not_read(tmp_path):
    path = write(tmp_path, START_1 + COMMAND_LINE + RESUMED.rstrip("\n"))
    scan = _preflight.scan_current_process(path, UPSTREAM, 1 << 20)
    assert scan["event"] is None and scan["complete"] is True


def test_a_process_that_ended_is_reported(tmp_path):
    path = write(tmp_path, START_1 + COMMAND_LINE + STOPPED)
    scan = _preflight.scan_current_process(path, ["all_vcpus_paused"], 1 << 20)
    assert scan["ended"] == "2026-12-02 15:21:25.697+0000 (reason destroyed)"
    assert scan["other_event"] is True
    # Its last event is found too, but the process is gone: the cause says so.
    scan = _preflight.scan_current_process(path, UPSTREAM, 1 << 20)
    assert scan["event"]["args"] == "running 0 reason 11 (shutdown)" and scan["ended"]
    assert "is not the log of the guest's current QEMU" in _preflight.trace_cause(scan, UPSTREAM, [], [], {}, path, 1 << 20)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 4096])
def test_chunk_size_does_not_change_the_result(tmp_path, chunk_size):
    path = write(tmp_path, TWO_PROCESSES + OTHER_EVENT + RESUMED + MONITOR)
    scan = _preflight.scan_current_process(path, UPSTREAM, 1 << 20, chunk_size=chunk_size)
    assert scan["event"]["ts"] == 1796224884.449519
    empty = _preflight.scan_current_process(write(tmp_path, TWO_PROCESSES, "b.log"), UPSTREAM, 1 << 20, chunk_size=chunk_size)
    assert empty["started"] == "2026-12-02 15:21:42.185+0000" and empty["warnings"] == [WARNING.strip()]


def test_the_read_stays_within_max_bytes_on_a_huge_log(tmp_path):
    # 4 MiB of other events after the start line: the scan gives up after max_bytes, saying it did not see the start.
    noise = OTHER_EVENT * (4 * 1024 * 1024 // len(OTHER_EVENT))
    path = write(tmp_path, START_1 + COMMAND_LINE + noise)
    scan = _preflight.scan_current_process(path, UPSTREAM, 65536)
    assert scan["complete"] is False and scan["event"] is None
    assert 0 < scan["bytes_read"] <= 65536
    assert scan["other_event"] is True


def test_the_start_line_is_found_in_virtlogds_rotated_backup(tmp_path):
    path = write(tmp_path, OTHER_EVENT * 3)
    write(tmp_path, START_1 + COMMAND_LINE + OTHER_EVENT, "kae-guest.log.0")
    write(tmp_path, START_1 + RESUMED, "kae-guest.log.1")
    scan = _preflight.scan_current_process(path, UPSTREAM, 1 << 20)
    assert scan["event"] is None and scan["started"] == "2026-12-02 15:21:23.316+0000" and scan["other_event"] is True


def test_an_event_in_the_rotated_backup_counts(tmp_path):
    path = write(tmp_path, OTHER_EVENT)
    write(tmp_path, START_1 + RESUMED, "kae-guest.log.0")
    assert _preflight.scan_current_process(path, UPSTREAM, 1 << 20)["event"]["name"] == "vm_state_notify"


def test_a_missing_log_is_an_error(tmp_path):
    with pytest.raises(PreflightError, match="the QEMU log .*nothere.log does not exist: check log_path"):
        _preflight.scan_current_process(str(tmp_path / "nothere.log"), UPSTREAM, 1024)


# --------------------------------------------------------------------------- judging trace arrival


def test_trace_patterns_of_qemu_trace_values():
    assert _preflight.trace_patterns(["vm_state_notify", "enable=all_vcpus*,file=/tmp/t", "events=/etc/ev", ""]) == [
        "vm_state_notify", "all_vcpus*"]


def test_matching_is_shell_style():
    assert _preflight.matching(["all_vcpus*", "nosuch*", "vm_state_notify"], AUTO) == ["all_vcpus*", "vm_state_notify"]


def scan(event=None, started="2026-12-02 15:21:42.185+0000", complete=True, other_event=False, warnings=(), ended=None):
    return {"event": event, "started": started, "complete": complete, "other_event": other_event, "warnings": list(warnings),
            "ended": ended, "bytes_read": 100}


LOG = "/var/log/libvirt/qemu/kae-guest.log"
EVENT = {"ts": 1.0, "tid": 1, "name": "vm_state_notify", "args": ""}


@pytest.mark.parametrize("case, scanned, names, live, defined, states, expected", [
    ("event found", scan(event=EVENT), AUTO, ["vm_state_notify"], ["vm_state_notify"], {}, None),
    ("no arguments anywhere", scan(), AUTO, [], [], {"vm_state_notify": "disabled"},
     "neither the running QEMU nor the guest's definition has --trace arguments matching all_vcpus_paused, all_vcpus_prepared, "
     "vm_state_notify (running: none; defined: none)"),
    ("started before the arguments were added", scan(), AUTO, ["other_event"], ["all_vcpus*", "vm_state_notify"], {},
     "the running QEMU was started without --trace arguments matching all_vcpus_paused, all_vcpus_prepared, vm_state_notify "
     "(its --trace patterns: other_event), but the guest's definition has them (all_vcpus*, vm_state_notify): it was started "
     "before they were added; restart the guest"),
    ("pattern matching nothing", scan(warnings=[WARNING.strip()]), profile_event_names("openeuler"), ["all_vcpus*"], ["all_vcpus*"],
     {"all_vcpus_paused": "unknown", "all_vcpus_prepared": "unknown"},
     "the --trace pattern(s) all_vcpus* name events of the profile, but QEMU has none of them enabled (QEMU's state of each: "
     "all_vcpus_paused: unknown; all_vcpus_prepared: unknown): the pattern matches nothing in this QEMU"),
    ("QEMU's warning quoted", scan(warnings=[WARNING.strip()]), ["all_vcpus_paused"], ["all_vcpus_paused"], [], {"all_vcpus_paused": "unknown"},
     "QEMU said: " + WARNING.strip()),
    ("enabled and another event arrived", scan(other_event=True), ["vmstate_downtime_checkpoint"], ["vmstate_downtime_checkpoint"], [],
     {"vmstate_downtime_checkpoint": "enabled"}, None),
    ("enabled, nothing arrived: backend", scan(), UPSTREAM, ["vm_state_notify"], ["vm_state_notify"], {"vm_state_notify": "enabled"},
     "QEMU has vm_state_notify enabled, but not one trace line reached %s since the process started (2026-12-02 15:21:42.185+0000): "
     "QEMU's trace backend is likely not 'log'" % LOG),
    ("migration-only events", scan(), ["vmstate_downtime_checkpoint"], ["vmstate_downtime_checkpoint"], [],
     {"vmstate_downtime_checkpoint": "enabled"}, "or these events fire only while migrating: add --trace vm_state_notify"),
    ("start beyond the budget", scan(complete=False, started=None), UPSTREAM, ["vm_state_notify"], [], {"vm_state_notify": "enabled"},
     "neither an event of the profile nor the start of the current QEMU process is within the last 4096 bytes of %s" % LOG),
    ("process ended after its event", scan(event=EVENT, ended="2026-12-02 15:21:25.697+0000 (reason destroyed)"), UPSTREAM,
     ["vm_state_notify"], [], {},
     "the latest QEMU process in %s ended at 2026-12-02 15:21:25.697+0000 (reason destroyed) although the guest runs" % LOG),
])
def test_trace_cause(case, scanned, names, live, defined, states, expected):
    cause = _preflight.trace_cause(scanned, names, live, defined, states, LOG, 4096)
    if expected is None:
        assert cause is None, case
    else:
        assert cause is not None and expected in cause, (case, cause)


def test_refusals_name_guest_host_and_cause():
    assert _preflight.qemu_refusal("kae-blocked", "kae-lab-a", [IVSHMEM, "second"]) == (
        "QEMU refuses to migrate kae-blocked on kae-lab-a: %s; second" % IVSHMEM)
    text = _preflight.trace_refusal("kae-guest", "kae-lab-b", UPSTREAM, scan(), "CAUSE")
    assert text == ("kae-guest on kae-lab-b: no trace event (vm_state_notify) of its current QEMU process (started "
                    "2026-12-02 15:21:42.185+0000) is in its log, so the downtime could not be measured: CAUSE")
