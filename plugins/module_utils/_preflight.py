# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Migration pre-flight of a running guest: QEMU's own verdict, and proof that its trace events reach its log.

QEMU's verdict is ``query-migrate``'s ``blocked-reasons`` (QEMU >= 6.0): every migration blocker QEMU holds
(devices marked unmigratable and explicit blockers), in QEMU's words. The key is left out when nothing blocks,
so its absence means "migratable" only on a QEMU that knows it.

Trace arrival is read backwards from the end of the domain's log, up to the line libvirt writes each time it
starts a QEMU process for the domain (``...: starting up libvirt version: ...``, incoming migrations
included): what follows that line is the current process's. Reading backwards stops at the first event of
the profile, at that line, or after a byte budget, so the cost does not depend on the log's size.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re

from ansible_collections.openeuler.kae.plugins.module_utils._migration import version_text
from ansible_collections.openeuler.kae.plugins.module_utils._trace import parse_line

# query-migrate has blocked-reasons since QEMU 6.0 (libvirt's version encoding).
BLOCKED_REASONS_SINCE = 6000000
# query-migrate statuses of a migration in progress.
ACTIVE_STATUSES = ("setup", "active", "pre-switchover", "device", "postcopy-active", "postcopy-paused",
                   "postcopy-recover", "cancelling", "wait-unplug")
# Event printed at every start of a QEMU process under libvirt (libvirt starts QEMU paused, then resumes it).
START_EVENT = "vm_state_notify"
CHUNK_SIZE = 64 * 1024

_STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}[+-]\d{4}"
_START_RE = re.compile(r"(%s): starting up\b" % _STAMP)
_END_RE = re.compile(r"(%s): shutting down, reason=(\S+)" % _STAMP)
# QEMU's warning for a --trace name that is not a pattern and names no event.
_UNKNOWN_EVENT_RE = re.compile(r"warning: trace event '[^']*' does not exist")
# Byte strings without which a block of lines holds nothing but other events and libvirt chatter.
_MARKERS = (b": starting up", b": shutting down, reason=", b"' does not exist")
_TRACE_LINE_RE = re.compile(rb"^\d+@\d+\.\d{6}:\w+", re.M)


class PreflightError(Exception):
    """A reply or a file cannot be read as expected; the message says what and where."""


# ---------------------------------------------------------------------------
# QEMU monitor (QMP) through libvirt's passthrough


def qmp_command(name, arguments=None):
    """The JSON text of one QMP command."""
    command = {"execute": name}
    if arguments:
        command["arguments"] = arguments
    return json.dumps(command, sort_keys=True)


def qmp_reply(text, command):
    """(return value, error description or None) of a QMP reply text; PreflightError when it is no QMP reply."""
    try:
        reply = json.loads(text)
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or not ("return" in reply or isinstance(reply.get("error"), dict)):
        shown = text if len(text) <= 200 else text[:197] + "..."
        raise PreflightError("QEMU's reply to %s is not a QMP reply: %s" % (command, shown))
    if "error" in reply:
        return None, str(reply["error"].get("desc") or reply["error"])
    return reply["return"], None


def blocked_reasons(answer, qemu_version):
    """QEMU's reasons, verbatim, why the guest cannot migrate now (empty when it can), from query-migrate's return.

    QEMU_VERSION is libvirt's number for the hypervisor (major * 1000000 + minor * 1000 + micro).
    """
    if not isinstance(answer, dict):
        raise PreflightError("query-migrate returned %r, not an object" % (answer,))
    reasons = answer.get("blocked-reasons")
    if reasons is not None:
        if not isinstance(reasons, list) or not all(isinstance(item, str) for item in reasons):
            raise PreflightError("query-migrate's blocked-reasons is %r, not a list of texts" % (reasons,))
        return list(reasons)
    if answer.get("blocked") is True:
        # QEMU 6.0 alone also had a bare "blocked" flag.
        return ["QEMU reports the migration blocked without giving a reason"]
    if qemu_version < BLOCKED_REASONS_SINCE:
        raise PreflightError("QEMU %s does not report migration blockers (query-migrate has blocked-reasons from QEMU 6.0 "
                             "on), so it cannot be asked whether the guest can migrate" % version_text(qemu_version))
    return []


def migration_in_progress(answer):
    """The query-migrate status when a migration of the guest is running, else None."""
    status = answer.get("status") if isinstance(answer, dict) else None
    return status if status in ACTIVE_STATUSES else None


def event_state(answer, error):
    """One trace event's state from a trace-event-get-state reply: enabled, disabled, unavailable or unknown."""
    if error is not None:
        # QEMU answers a name it has no event for with an error ("unknown event ...").
        return "unknown"
    if isinstance(answer, list) and answer and isinstance(answer[0], dict):
        return str(answer[0].get("state", "unknown"))
    return "unknown"


# ---------------------------------------------------------------------------
# The current QEMU process's part of the log, read backwards


def log_files(path):
    """PATH and the backups virtlogd rotated it into (PATH.0 newest, PATH.1, ...), newest first."""
    yield path
    index = 0
    while os.path.exists("%s.%d" % (path, index)):
        yield "%s.%d" % (path, index)
        index += 1


def _blocks_backwards(path, budget, chunk_size):
    """Yield (block, bytes used): PATH's complete lines chunk by chunk, last chunk first, until BUDGET bytes are read.

    A block is the complete lines of one chunk joined by newlines, in file order.
    """
    with open(path, "rb") as handle:
        position = os.fstat(handle.fileno()).st_size
        used = 0
        head = b""  # the start of the chunk after POSITION, whose line may begin before POSITION
        in_last_line = True  # bytes after the file's last newline: a line still being written, never yielded
        while position > 0 and used < budget:
            size = min(chunk_size, position, budget - used)
            position -= size
            used += size
            handle.seek(position)
            data = handle.read(size) + head
            if in_last_line:
                cut = data.rfind(b"\n")
                if cut < 0:
                    head = data
                    continue
                data = data[:cut]
                in_last_line = False
            if position > 0:
                cut = data.find(b"\n")
                if cut < 0:
                    head = data
                    continue
                head, data = data[:cut], data[cut + 1:]
            yield data, used


def scan_current_process(path, names, max_bytes, chunk_size=CHUNK_SIZE):
    """What the log holds for the current QEMU process, read backwards from the end.

    Stops at the latest event whose name is in NAMES, at libvirt's start line of the process, or after
    MAX_BYTES (over PATH and its rotated backups). Returns {event, started, ended, other_event, warnings,
    complete, bytes_read}: event is the latest event of NAMES (None when there is none); started the time of
    the process's start line; ended libvirt's "shutting down" line after it, if any (the process is gone);
    other_event whether another trace event of the process was seen; warnings QEMU's "trace event ... does not exist"
    lines; complete whether everything from the start line on was read. A missing PATH is a PreflightError.
    """
    found = {"event": None, "started": None, "ended": None, "other_event": False, "warnings": [], "complete": False, "bytes_read": 0}
    wanted = set(names)
    for index, file_path in enumerate(log_files(path)):
        try:
            if _scan_file(file_path, wanted, max_bytes, chunk_size, found):
                break
        except FileNotFoundError:
            if index == 0:
                raise PreflightError("the QEMU log %s does not exist: check log_path (libvirt writes DIR/DOMAIN.log for "
                                     "every domain it starts)" % path) from None
            break  # a backup rotated away meanwhile
        except OSError as exc:
            raise PreflightError("cannot read the QEMU log %s: %s" % (file_path, exc.strerror or exc)) from None
        if found["bytes_read"] >= max_bytes:
            break
    return found


def _scan_file(path, wanted, max_bytes, chunk_size, found):
    """Scan one file backwards into FOUND within what is left of MAX_BYTES; True when the scan can stop."""
    read_before = found["bytes_read"]
    budget = max_bytes - read_before
    markers = _MARKERS + tuple(name.encode() for name in wanted)
    for block, used in _blocks_backwards(path, budget, chunk_size):
        found["bytes_read"] = read_before + used
        if not any(marker in block for marker in markers):
            # Nothing but other lines: no need to parse each one.
            found["other_event"] = found["other_event"] or _TRACE_LINE_RE.search(block) is not None
            continue
        for raw in reversed(block.split(b"\n")):
            if _classify(raw.decode("utf-8", "replace"), wanted, found):
                return True
    found["bytes_read"] = read_before + min(os.path.getsize(path), budget)
    return False


def _classify(line, wanted, found):
    """Record one log line (read backwards) in FOUND; True when the scan can stop."""
    event = parse_line(line)
    if event is not None:
        if event["name"] in wanted:
            found["event"] = event
            return True
        found["other_event"] = True
        return False
    start = _START_RE.search(line)
    if start:
        found["started"] = start.group(1)
        found["complete"] = True
        return True
    end = _END_RE.search(line)
    if end and found["ended"] is None:
        found["ended"] = "%s (reason %s)" % (end.group(1), end.group(2))
    elif _UNKNOWN_EVENT_RE.search(line):
        found["warnings"].insert(0, line.strip())
    return False


# ---------------------------------------------------------------------------
# Judging trace arrival


def trace_patterns(values):
    """The event patterns of QEMU --trace values (PATTERN or enable=PATTERN[,file=...]); events=FILE is left out."""
    patterns = []
    for value in values:
        for part in value.split(","):
            key, _sep, rest = part.partition("=")
            if not _sep:
                patterns.append(part)
            elif key == "enable":
                patterns.append(rest)
    return [pattern for pattern in patterns if pattern]


def matching(patterns, names):
    """The PATTERNS that match at least one of the event NAMES, the way QEMU's --trace does (shell-style)."""
    return [pattern for pattern in patterns if any(fnmatch.fnmatchcase(name, pattern) for name in names)]


def _join(items):
    return ", ".join(items) if items else "none"


def trace_cause(scan, names, live_values, defined_values, states, log_path, max_bytes):
    """Why no event of NAMES from the current QEMU process is in its log, or None when the trace is proven.

    SCAN is scan_current_process's result; LIVE_VALUES the --trace values of the running domain, DEFINED_VALUES
    those of its persistent definition; STATES {event name: state} from QEMU (empty when QEMU was not asked).
    Without an event of NAMES in the log, the trace still counts as proven when QEMU has one of NAMES enabled
    and another event of the same process reached the log (the log backend works; the events fire later).
    """
    if scan["ended"]:
        # Even an event before that line belongs to a process that is gone.
        return ("the latest QEMU process in %s ended at %s although the guest runs: this is not the log of the guest's "
                "current QEMU; check log_path" % (log_path, scan["ended"]))
    if scan["event"] is not None:
        return None
    enabled = [name for name in names if states.get(name) == "enabled"]
    if enabled and scan["other_event"]:
        return None
    live = trace_patterns(live_values)
    if not matching(live, names):
        return _missing_arguments(names, live, trace_patterns(defined_values))
    if not enabled:
        return _matching_nothing(names, matching(live, names), states, scan["warnings"])
    if not scan["complete"]:
        return ("neither an event of the profile nor the start of the current QEMU process is within the last %d bytes "
                "of %s (and its rotated backups): raise max_bytes" % (max_bytes, log_path))
    cause = ("QEMU has %s enabled, but not one trace line reached %s since the process started (%s): QEMU's trace backend "
             "is likely not 'log' (a QEMU built with only the dtrace, ust or nop backend prints nothing to the log)"
             % (_join(enabled), log_path, scan["started"]))
    if START_EVENT not in names:
        cause += ("; or these events fire only while migrating: add --trace %s so that a start proves trace lines reach the "
                  "log" % START_EVENT)
    return cause


def _missing_arguments(names, live, defined):
    wanted = "--trace arguments matching %s" % _join(names)
    if matching(defined, names):
        return ("the running QEMU was started without %s (its --trace patterns: %s), but the guest's definition has them "
                "(%s): it was started before they were added; restart the guest (for example with guest_restart: true in "
                "the guest phase) so that QEMU reads them" % (wanted, _join(live), _join(matching(defined, names))))
    return ("neither the running QEMU nor the guest's definition has %s (running: %s; defined: %s): set them with the guest "
            "phase (openeuler.kae.guest_config trace_profile) and restart the guest" % (wanted, _join(live), _join(defined)))


def _matching_nothing(names, patterns, states, warnings):
    said = "; ".join("%s: %s" % (name, states[name]) for name in names if name in states) or "not asked"
    cause = ("the --trace pattern(s) %s name events of the profile, but QEMU has none of them enabled (QEMU's state of each: %s): "
             "the pattern matches nothing in this QEMU (a glob that matches nothing is silently ignored, a literal name "
             "only warns), so choose the profile of this QEMU (openeuler events exist only in openEuler's QEMU, "
             "upstream QEMU has vm_state_notify)" % (_join(patterns), said))
    if warnings:
        cause += "; QEMU said: %s" % " | ".join(warnings)
    return cause


def trace_refusal(domain, host, names, scan, cause):
    """The sentence refusing DOMAIN on HOST for CAUSE (from trace_cause)."""
    started = " (started %s)" % scan["started"] if scan["started"] else ""
    return ("%s on %s: no trace event (%s) of its current QEMU process%s is in its log, so the downtime could not be "
            "measured: %s" % (domain, host, _join(names), started, cause))


def qemu_refusal(domain, host, reasons):
    """The sentence refusing DOMAIN on HOST with QEMU's REASONS verbatim."""
    return "QEMU refuses to migrate %s on %s: %s" % (domain, host, "; ".join(reasons))
