# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _logread
from ansible_collections.openeuler.kae.plugins.modules import qemu_trace_events

LOG = (
    b"2026-11-25 18:04:53.027+0000: initiating migration\n"
    b"219@1795629893.037357:runstate_set current_run_state 9 (running) new_state 7 (finish-migrate)\n"
    b"219@1795629893.041251:vm_state_notify running 0 reason 7 (finish-migrate)\n"
    b"16465@1747835912.854818:all_vcpus_paused \n"
    b"500@1800000000.100000:vmstate_downtime_checkpoint src-downtime-start\n"
)


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "kae-guest.log"
    path.write_bytes(LOG)
    return path


def test_default_profile_keeps_the_openeuler_and_upstream_events(run_module, log):
    result = run_module(qemu_trace_events, {"log_path": str(log)})
    assert result["changed"] is False
    assert [event["name"] for event in result["events"]] == ["vm_state_notify", "all_vcpus_paused"]
    assert result["events"][0] == {"ts": 1795629893.041251, "tid": 219, "name": "vm_state_notify", "args": "running 0 reason 7 (finish-migrate)"}
    assert result["next_offset"] == result["size"] == len(LOG)
    assert result["inode"] == os.stat(str(log)).st_ino
    assert result["rotated"] is False and result["more"] is False
    assert result["log_path"] == str(log) and result["exists"] is True


@pytest.mark.parametrize("args, names", [
    ({"profile": "downtime_checkpoint"}, ["vmstate_downtime_checkpoint"]),
    ({"profile": "openeuler"}, ["all_vcpus_paused"]),
    ({"events": ["runstate_*", "all_vcpus*"]}, ["runstate_set", "all_vcpus_paused"]),
    ({"events": ["*"], "profile": "openeuler"}, ["runstate_set", "vm_state_notify", "all_vcpus_paused", "vmstate_downtime_checkpoint"]),
])
def test_profile_or_events_choose_what_is_kept(run_module, log, args, names):
    result = run_module(qemu_trace_events, dict(args, log_path=str(log)))
    assert [event["name"] for event in result["events"]] == names


def test_check_mode_reads_the_same(run_module, log):
    assert run_module(qemu_trace_events, {"log_path": str(log)}, check_mode=True) == run_module(qemu_trace_events, {"log_path": str(log)})


def test_offset_inode_partial_line_and_rotation_round_trip(run_module, log):
    first = run_module(qemu_trace_events, {"log_path": str(log), "events": ["*"]})
    with open(str(log), "ab") as handle:
        handle.write(b"219@1795629893.049619:migrate_set_state new state completed\n301@17956298")
    second = run_module(qemu_trace_events, {"log_path": str(log), "events": ["*"], "offset": first["next_offset"], "inode": first["inode"]})
    assert [event["name"] for event in second["events"]] == ["migrate_set_state"]
    assert second["next_offset"] == second["size"] - len(b"301@17956298")
    assert second["rotated"] is False
    os.rename(str(log), str(log) + ".0")
    log.write_bytes(LOG)
    third = run_module(qemu_trace_events, {"log_path": str(log), "events": ["*"], "offset": second["next_offset"], "inode": second["inode"]})
    assert third["rotated"] is True
    assert len(third["events"]) == 4


def test_domain_derives_libvirts_log_path(run_module, monkeypatch, tmp_path, log):
    monkeypatch.setattr(_logread, "QEMU_LOG_DIR", str(tmp_path))
    assert run_module(qemu_trace_events, {"domain": "kae-guest"})["log_path"] == str(log)


def test_mark_reads_no_event_and_a_read_from_it_gets_only_what_came_after(run_module, log):
    mark = run_module(qemu_trace_events, {"log_path": str(log), "mark": True, "offset": 5, "events": ["*"]})
    assert mark["events"] == [] and mark["exists"] is True
    assert mark["next_offset"] == mark["size"] == len(LOG)
    assert mark["inode"] == os.stat(str(log)).st_ino
    with open(str(log), "ab") as handle:
        handle.write(b"219@1795629893.049619:migrate_set_state new state completed\n")
    after = run_module(qemu_trace_events, {"log_path": str(log), "events": ["*"], "offset": mark["next_offset"], "inode": mark["inode"]})
    assert [event["name"] for event in after["events"]] == ["migrate_set_state"] and after["rotated"] is False


def test_mark_of_a_log_whose_last_line_is_unfinished_stops_at_the_line_start(run_module, log):
    with open(str(log), "ab") as handle:
        handle.write(b"301@17956298")
    mark = run_module(qemu_trace_events, {"log_path": str(log), "mark": True})
    assert mark["size"] == len(LOG) + len(b"301@17956298")
    assert mark["next_offset"] == len(LOG)
    with open(str(log), "ab") as handle:
        handle.write(b"93.054982:vm_state_notify running 1 reason 9 (running)\n")
    after = run_module(qemu_trace_events, {"log_path": str(log), "offset": mark["next_offset"], "inode": mark["inode"]})
    assert [event["ts"] for event in after["events"]] == [1795629893.054982] and after["rotated"] is False


def test_mark_of_a_missing_log_is_a_mark_at_its_start(run_module, tmp_path):
    mark = run_module(qemu_trace_events, {"log_path": str(tmp_path / "new.log"), "mark": True})
    assert (mark["exists"], mark["next_offset"], mark["size"], mark["inode"]) == (False, 0, 0, None)


def test_a_destination_without_a_log_yet_gives_a_starting_position(run_module, tmp_path):
    result = run_module(qemu_trace_events, {"log_path": str(tmp_path / "new.log"), "allow_missing": True})
    assert (result["events"], result["next_offset"], result["inode"], result["exists"]) == ([], 0, None, False)


def test_max_bytes_reads_in_steps(run_module, log):
    result = run_module(qemu_trace_events, {"log_path": str(log), "events": ["*"], "max_bytes": 150})
    assert [event["name"] for event in result["events"]] == ["runstate_set"]
    assert result["more"] is True


@pytest.mark.parametrize("args, message", [
    ({"domain": "../etc/passwd"}, "domain must be a libvirt domain name (no '/', no leading '.', no control characters), "
                                  "but '../etc/passwd' contains '/'"),
    ({"domain": ".."}, "but '..' starts with '.'"),
    ({"domain": "kae\x00guest"}, "domain must not contain a NUL byte"),
    ({"domain": "kae\tguest"}, "contains a control character"),
    ({"log_path": "/var/log/libvirt/qemu/kae\x00.log"}, "log_path (the path of a QEMU log file) must not contain a NUL byte"),
    ({"offset": "1e99999999"}, "offset must be a whole number written with the digits 0-9, got '1e99999999'"),
    ({"offset": "inf"}, "offset must be a whole number written with the digits 0-9, got 'inf'"),
    ({"offset": float("inf")}, "offset must be a whole number, got inf"),
    ({"offset": "\u0661\u0662"}, "offset must be a whole number written with the digits 0-9"),
    ({"offset": True}, "offset must be a whole number, got bool True"),
    ({"offset": "ten"}, "offset must be a whole number written with the digits 0-9, got 'ten'"),
    ({"offset": [0]}, "argument 'offset' is of type list"),
    ({"inode": -1}, "inode must be at least 0, got -1"),
    ({"inode": "nan"}, "inode must be a whole number written with the digits 0-9, got 'nan'"),
    ({"max_bytes": "1e400"}, "max_bytes must be a whole number written with the digits 0-9, got '1e400'"),
    ({"max_bytes": False}, "max_bytes must be a whole number, got bool False"),
    ({"domain": "absent-guest"}, "the QEMU log /var/log/libvirt/qemu/absent-guest.log does not exist"),
    ({"offset": -5}, "offset must be 0 or a next_offset returned by an earlier read, got -5"),
    ({"max_bytes": 0}, "max_bytes must be at least 1, got 0"),
    ({"profile": "qemu9"}, "value of profile must be one of: auto, openeuler, upstream, downtime_checkpoint"),
])
def test_bad_input_fails_with_a_clear_message(fail_module, log, args, message):
    params = dict({"log_path": str(log)} if "domain" not in args and "path" not in args else {}, **args)
    assert message in fail_module(qemu_trace_events, params)["msg"]


def test_log_path_and_domain_are_exclusive_and_one_is_required(fail_module, log):
    assert "mutually exclusive: log_path|domain" in fail_module(qemu_trace_events, {"log_path": str(log), "domain": "kae-guest"})["msg"]
    assert "one of the following is required: log_path, domain" in fail_module(qemu_trace_events, {})["msg"]


@pytest.mark.parametrize("make, kind", [
    (os.mkfifo, "a FIFO"),
    (os.mkdir, "a directory"),
])
def test_only_a_regular_file_is_read_and_a_fifo_does_not_block(fail_module, tmp_path, make, kind):
    # With no writer, a plain open() of the FIFO would wait forever; the module must answer at once.
    path = tmp_path / "kae-guest.log"
    make(str(path))
    message = fail_module(qemu_trace_events, {"log_path": str(path)})["msg"]
    assert message == ("cannot read the QEMU log %s: it is %s, not a regular file; give the domain's log file "
                       "(/var/log/libvirt/qemu/DOMAIN.log)" % (path, kind))


def test_a_character_device_is_refused(fail_module):
    assert "it is a character device, not a regular file" in fail_module(qemu_trace_events, {"log_path": "/dev/zero"})["msg"]
