# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _logread
from ansible_collections.openeuler.kae.plugins.module_utils._logread import LogReadError, read_events

BOOT = b"2026-11-25 17:00:00.000+0000: starting up libvirt version: 9.0.0\n100@1795626000.100000:vm_state_notify running 1 reason 9 (running)\n"
PAUSE = b"219@1795629893.041251:vm_state_notify running 0 reason 7 (finish-migrate)\n"
OTHER = b"219@1795629893.041332:migration_completion_vm_stop ret 0\n"
PAUSED_OE = b"16465@1747835912.854818:all_vcpus_paused \n"


def _log(tmp_path, content):
    path = tmp_path / "kae-guest.log"
    path.write_bytes(content)
    return str(path)


def _append(path, content):
    with open(path, "ab") as handle:
        handle.write(content)


def _names(result):
    return [(event["name"], event["args"]) for event in result["events"]]


def test_reads_everything_from_zero_and_reports_where_it_stopped(tmp_path):
    path = _log(tmp_path, BOOT + PAUSE + OTHER)
    result = read_events(path)
    assert _names(result) == [("vm_state_notify", "running 1 reason 9 (running)"), ("vm_state_notify", "running 0 reason 7 (finish-migrate)"),
                              ("migration_completion_vm_stop", "ret 0")]
    assert result["next_offset"] == result["size"] == len(BOOT + PAUSE + OTHER)
    assert result["inode"] == os.stat(path).st_ino
    assert result["rotated"] is False and result["more"] is False


def test_reads_only_what_follows_the_offset(tmp_path):
    path = _log(tmp_path, BOOT)
    before = read_events(path)
    _append(path, PAUSE)
    after = read_events(path, offset=before["next_offset"], inode=before["inode"])
    assert _names(after) == [("vm_state_notify", "running 0 reason 7 (finish-migrate)")]
    assert after["next_offset"] == len(BOOT + PAUSE)
    assert after["rotated"] is False


def test_the_bytes_before_the_offset_are_never_parsed(tmp_path):
    # Trace lines before the offset would be returned if the reader looked at them.
    path = _log(tmp_path, PAUSE * 1000)
    _append(path, OTHER)
    result = read_events(path, offset=len(PAUSE) * 1000)
    assert _names(result) == [("migration_completion_vm_stop", "ret 0")]


def test_keeps_only_the_named_events_with_wildcards(tmp_path):
    path = _log(tmp_path, BOOT + PAUSED_OE + PAUSE + OTHER)
    assert [event["name"] for event in read_events(path, names=["all_vcpus*"])["events"]] == ["all_vcpus_paused"]
    assert len(read_events(path, names=["*"])["events"]) == 4
    assert read_events(path, names=[])["events"] == []


def test_a_partial_last_line_is_left_for_the_next_read(tmp_path):
    path = _log(tmp_path, BOOT + PAUSE[:30])
    first = read_events(path)
    assert first["next_offset"] == len(BOOT)
    assert first["size"] == len(BOOT) + 30
    _append(path, PAUSE[30:])
    second = read_events(path, offset=first["next_offset"], inode=first["inode"])
    assert _names(second) == [("vm_state_notify", "running 0 reason 7 (finish-migrate)")]
    assert second["next_offset"] == len(BOOT + PAUSE)


def test_a_log_shorter_than_the_offset_was_truncated_and_is_read_from_the_start(tmp_path):
    path = _log(tmp_path, BOOT + PAUSE)
    offset = read_events(path)["next_offset"]
    with open(path, "wb") as handle:
        handle.write(OTHER)
    result = read_events(path, offset=offset)
    assert result["rotated"] is True
    assert _names(result) == [("migration_completion_vm_stop", "ret 0")]
    assert result["next_offset"] == len(OTHER)


def test_a_new_inode_means_rotation_even_when_the_new_log_is_longer(tmp_path):
    path = _log(tmp_path, BOOT)
    first = read_events(path)
    os.rename(path, path + ".0")
    _log(tmp_path, PAUSE * 3)
    result = read_events(path, offset=first["next_offset"], inode=first["inode"])
    assert result["rotated"] is True
    assert len(result["events"]) == 3
    assert result["inode"] != first["inode"]


def test_an_offset_inside_a_line_means_the_log_was_rewritten(tmp_path):
    path = _log(tmp_path, BOOT + PAUSE)
    result = read_events(path, offset=len(BOOT) + 5)
    assert result["rotated"] is True
    assert len(result["events"]) == 2


def test_max_bytes_stops_at_the_last_complete_line_and_says_there_is_more(tmp_path):
    path = _log(tmp_path, PAUSE + OTHER)
    first = read_events(path, max_bytes=len(PAUSE) + 10)
    assert _names(first) == [("vm_state_notify", "running 0 reason 7 (finish-migrate)")]
    assert first["more"] is True and first["next_offset"] == len(PAUSE)
    second = read_events(path, offset=first["next_offset"], max_bytes=len(PAUSE) + 10)
    assert _names(second) == [("migration_completion_vm_stop", "ret 0")]
    assert second["more"] is False


def test_lines_spanning_chunks_are_read_whole(tmp_path):
    path = _log(tmp_path, BOOT + PAUSE + OTHER)
    assert read_events(path, chunk_size=7)["events"] == read_events(path)["events"]


def test_a_line_longer_than_max_bytes_is_an_error_naming_the_fix(tmp_path):
    path = _log(tmp_path, PAUSE + OTHER)
    with pytest.raises(LogReadError, match="no line end within max_bytes .10. after offset 0: raise max_bytes"):
        read_events(path, max_bytes=10)


def test_a_missing_log_names_the_path(tmp_path):
    with pytest.raises(LogReadError, match="the QEMU log .*/nothere.log does not exist: check the domain name or path"):
        read_events(str(tmp_path / "nothere.log"))


def test_a_missing_log_may_be_read_as_empty(tmp_path):
    assert read_events(str(tmp_path / "nothere.log"), allow_missing=True) == {
        "events": [], "next_offset": 0, "size": 0, "inode": None, "rotated": False, "more": False, "exists": False}
    assert read_events(_log(tmp_path, BOOT), allow_missing=True)["exists"] is True


def test_a_directory_is_not_a_log(tmp_path):
    with pytest.raises(LogReadError, match="^cannot read the QEMU log .*: it is a directory, not a regular file"):
        read_events(str(tmp_path))


@pytest.mark.parametrize("kwargs, expected", [
    ({"offset": -1}, "offset must be 0 or a next_offset returned by an earlier read, got -1"),
    ({"max_bytes": 0}, "max_bytes must be at least 1, got 0"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, expected):
    with pytest.raises(LogReadError, match=expected):
        read_events(_log(tmp_path, BOOT), **kwargs)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    path = str(tmp_path / "fifo.log")
    os.mkfifo(path)
    for allow_missing in (False, True):
        with pytest.raises(LogReadError, match="it is a FIFO, not a regular file"):
            read_events(path, allow_missing=allow_missing)


class CountingFile:
    """SIZE bytes of one unbroken line, then TAIL, served by read(); counts the reads and the bytes served."""

    def __init__(self, size, tail):
        self.size, self.tail = size, tail
        self.position = 0
        self.reads = 0
        self.served = 0

    def read(self, count):
        self.reads += 1
        if self.position < self.size:
            data = b"x" * min(count, self.size - self.position)
        else:
            start = self.position - self.size
            data = self.tail[start:start + count]
        self.position += len(data)
        self.served += len(data)
        return data


def test_a_long_line_costs_one_scan_of_its_bytes_and_is_never_held_whole(monkeypatch):
    """A single line of 256 MiB: each byte is read once and scanned once, and the parser never sees the line."""
    size, chunk = 256 * 1024 * 1024, 1024 * 1024
    tail = b"\n" + PAUSE
    handle = CountingFile(size, tail)
    scanned, parsed = [], []
    original_find, original_parse = _logread._find_newline, _logread.parse_line

    def counting_find(data, start):
        found = original_find(data, start)
        scanned.append((found + 1 if found >= 0 else len(data)) - start)
        return found

    def recording_parse(line):
        parsed.append(len(line))
        return original_parse(line)

    monkeypatch.setattr(_logread, "_find_newline", counting_find)
    monkeypatch.setattr(_logread, "parse_line", recording_parse)
    events, next_offset = _logread._read_lines(handle, 0, size + len(tail), lambda name: True, chunk)
    assert [event["name"] for event in events] == ["vm_state_notify"]
    assert next_offset == size + len(tail)
    assert handle.reads == size // chunk + 1 and handle.served == size + len(tail)
    assert sum(scanned) == size + len(tail)
    assert parsed == [len(PAUSE) - 1]


def test_a_long_line_is_skipped_and_the_lines_around_it_are_read(tmp_path):
    path = _log(tmp_path, PAUSE + b"y" * (_logread.MAX_LINE + 1) + b"\n" + OTHER)
    result = read_events(path, chunk_size=4096)
    assert _names(result) == [("vm_state_notify", "running 0 reason 7 (finish-migrate)"), ("migration_completion_vm_stop", "ret 0")]
    assert result["next_offset"] == result["size"]


def test_a_long_unfinished_last_line_is_left_for_the_next_read(tmp_path):
    path = _log(tmp_path, PAUSE + b"y" * (_logread.MAX_LINE * 3))
    assert read_events(path, chunk_size=4096)["next_offset"] == len(PAUSE)


def test_the_mark_finds_the_last_line_boundary_across_chunks(tmp_path):
    path = tmp_path / "g.log"
    path.write_bytes(b"1@1.0:a\n" + b"x" * 50 + b"\n" + b"y" * 40)
    mark = _logread.log_mark(str(path), chunk_size=16)
    assert (mark["next_offset"], mark["size"], mark["exists"]) == (59, 99, True)
    path.write_bytes(b"no newline at all")
    assert _logread.log_mark(str(path), chunk_size=4)["next_offset"] == 0


def test_the_mark_refuses_what_is_not_a_log(tmp_path):
    with pytest.raises(LogReadError, match="it is a directory, not a regular file"):
        _logread.log_mark(str(tmp_path))


def test_the_domain_log_path_is_libvirts_and_refuses_names_that_are_no_file_names():
    assert _logread.domain_log_path("kae-guest") == "/var/log/libvirt/qemu/kae-guest.log"
    with pytest.raises(_logread._validate.InputError, match="guest must be a libvirt domain name .* contains '/'"):
        _logread.domain_log_path("../x", option="guest")
