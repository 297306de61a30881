# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Read the trace events a QEMU log gained after a byte offset, without reading what lies before it.

A QEMU log only grows, but virtlogd or logrotate may rotate it (a new file) or truncate it.
The caller keeps ``next_offset`` and ``inode`` from one call and passes them to the next; a
file that no longer continues where the last read stopped is read from its start.
"""

from __future__ import annotations

import fnmatch
import os
import stat

from ansible_collections.openeuler.kae.plugins.module_utils import _validate
from ansible_collections.openeuler.kae.plugins.module_utils._trace import parse_line

# Where libvirt's QEMU driver writes each domain's log (and QEMU's trace lines): DIR/DOMAIN.log.
QEMU_LOG_DIR = "/var/log/libvirt/qemu"
CHUNK_SIZE = 1024 * 1024
# No QEMU trace line comes near this; longer lines (a huge libvirt command line, binary junk) are skipped
# without being kept, so memory stays bounded and the cost linear in the bytes read.
MAX_LINE = 64 * 1024


class LogReadError(Exception):
    """The log cannot be read as asked; the message names the path and the likely fix."""


def domain_log_path(domain, option="domain"):
    """The QEMU log of DOMAIN; InputError naming OPTION when the name cannot be a file name in QEMU_LOG_DIR."""
    return os.path.join(QEMU_LOG_DIR, _validate.domain_name(domain, option) + ".log")


def _name_filter(patterns):
    """A predicate on event names: shell-style PATTERNS (as in QEMU's --trace), or everything when None."""
    if patterns is None:
        return lambda name: True
    patterns = tuple(patterns)
    verdicts = {}

    def keep(name):
        if name not in verdicts:
            verdicts[name] = any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
        return verdicts[name]

    return keep


def _start(handle, size, ino, offset, inode):
    """Where to start reading and whether the file was rotated or truncated since OFFSET was taken."""
    if inode is not None and inode != ino:
        return 0, True
    if offset > size:
        return 0, True
    if offset > 0:
        # A recorded offset always follows a newline; anything else means the file was rewritten.
        handle.seek(offset - 1)
        if handle.read(1) != b"\n":
            return 0, True
    return offset, False


def _find_newline(chunk, start):
    """Index of the first newline of CHUNK at or after START, or -1 (every byte read passes here once)."""
    return chunk.find(b"\n", start)


class _LineSplitter:
    """Complete lines of a byte stream fed in chunks, each byte scanned once.

    A line longer than MAX_LINE is dropped as it goes: its bytes are not kept.
    """

    def __init__(self, start, max_line=MAX_LINE):
        self.line_start = start   # file offset where the line being assembled begins
        self.max_line = max_line
        self._parts = []
        self._kept = 0
        self._too_long = False

    def _keep(self, piece):
        if self._too_long or self._kept + len(piece) > self.max_line:
            self._parts, self._kept, self._too_long = [], 0, True
            return
        self._parts.append(piece)
        self._kept += len(piece)

    def feed(self, chunk, base):
        """The complete lines (without newline) that CHUNK, starting at file offset BASE, ends; over-long lines left out."""
        lines = []
        cut = 0
        while True:
            newline = _find_newline(chunk, cut)
            if newline < 0:
                break
            self._keep(chunk[cut:newline])
            if not self._too_long:
                lines.append(b"".join(self._parts))
            self._parts, self._kept, self._too_long = [], 0, False
            cut = newline + 1
            self.line_start = base + cut
        if cut < len(chunk):
            self._keep(chunk[cut:])
        return lines


def _regular_file(path):
    """An open binary handle on PATH and its fstat; LogReadError unless it is a regular file.

    O_NONBLOCK keeps the open of a FIFO from waiting for a writer; it changes nothing for a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise LogReadError("cannot read the QEMU log %s: it is %s, not a regular file; give the domain's log file "
                           "(/var/log/libvirt/qemu/DOMAIN.log)" % (path, _file_kind(status.st_mode)))
    return os.fdopen(fd, "rb"), status


def _file_kind(mode):
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def read_events(path, offset=0, inode=None, names=None, max_bytes=None, allow_missing=False, chunk_size=CHUNK_SIZE):
    """Trace events of PATH from byte OFFSET to its current end (or MAX_BYTES further).

    NAMES are shell-style patterns of event names to keep (all when None). Only complete lines are
    consumed: a last line without its newline yet is left for the next call, whose offset is the
    returned next_offset. Returns {events, next_offset, size, inode, rotated, more, exists}; rotated is true
    when the file was read from its start because it is a new file (INODE differs), shorter than
    OFFSET, or no longer has a line boundary at OFFSET; more is true when MAX_BYTES stopped the read.
    A missing PATH is an error unless ALLOW_MISSING, which reads it as empty (exists false, inode None).
    """
    if offset < 0:
        raise LogReadError("offset must be 0 or a next_offset returned by an earlier read, got %d" % offset)
    if max_bytes is not None and max_bytes < 1:
        raise LogReadError("max_bytes must be at least 1, got %d" % max_bytes)
    keep = _name_filter(names)
    try:
        handle, status = _regular_file(path)
        with handle:
            start, rotated = _start(handle, status.st_size, status.st_ino, offset, inode)
            # Stop at the size seen now: what QEMU appends meanwhile is for the next call.
            end = status.st_size if max_bytes is None else min(status.st_size, start + max_bytes)
            handle.seek(start)
            events, consumed = _read_lines(handle, start, end, keep, chunk_size)
    except FileNotFoundError:
        if allow_missing:
            return {"events": [], "next_offset": 0, "size": 0, "inode": None, "rotated": False, "more": False, "exists": False}
        raise LogReadError("the QEMU log %s does not exist: check the domain name or path (libvirt creates the log when the "
                           "domain first starts on this host)" % path) from None
    except OSError as exc:
        raise LogReadError("cannot read the QEMU log %s: %s" % (path, exc.strerror or exc)) from None
    if consumed == start and end < status.st_size:
        raise LogReadError("%s has no line end within max_bytes (%d) after offset %d: raise max_bytes" % (path, max_bytes, start))
    return {
        "events": events,
        "next_offset": consumed,
        "size": status.st_size,
        "inode": status.st_ino,
        "rotated": rotated,
        "more": end < status.st_size,
        "exists": True,
    }


def _line_boundary(handle, size, chunk_size):
    """Offset just after the last newline at or before SIZE (0 when there is none): where the next complete line starts."""
    end = size
    while end > 0:
        start = max(0, end - chunk_size)
        handle.seek(start)
        found = handle.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def log_mark(path, chunk_size=CHUNK_SIZE):
    """Where PATH ends now, as a position to read from later: {events: [], next_offset, size, inode, rotated, more, exists}.

    next_offset is the start of the line QEMU is writing when the last line has no newline yet, so a
    read_events from it (with the inode) continues on a line boundary. A missing PATH is a mark at 0
    (exists false, inode None): a host where the domain never ran has no log yet.
    """
    try:
        handle, status = _regular_file(path)
        with handle:
            boundary = _line_boundary(handle, status.st_size, chunk_size)
    except FileNotFoundError:
        return {"events": [], "next_offset": 0, "size": 0, "inode": None, "rotated": False, "more": False, "exists": False}
    except OSError as exc:
        raise LogReadError("cannot read the QEMU log %s: %s" % (path, exc.strerror or exc)) from None
    return {"events": [], "next_offset": boundary, "size": status.st_size, "inode": status.st_ino,
            "rotated": False, "more": False, "exists": True}


def _read_lines(handle, position, end, keep, chunk_size):
    """Events of the complete lines between POSITION and END, and the offset just after the last of them."""
    events = []
    splitter = _LineSplitter(position)
    while position < end:
        chunk = handle.read(min(chunk_size, end - position))
        if not chunk:
            break
        for line in splitter.feed(chunk, position):
            event = parse_line(line)
            if event is not None and keep(event["name"]):
                events.append(event)
        position += len(chunk)
    return events, splitter.line_start
