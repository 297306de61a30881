# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""QEMU trace events: parsing, event profiles, pairing source pauses with destination resumes, downtime.

A trace line (QEMU ``log`` backend with ``-msg timestamp=on``, which libvirt always passes) is
``TID@SECONDS.MICROSECONDS:event_name args``. Times are wall-clock, so a source time and a
destination time compare only as far as the two hosts' clocks agree; ``clock_offset_ms``
(destination clock minus source clock) corrects for that.

Times are handled as integer microseconds so that published figures come out exact.
"""

from __future__ import annotations

import bisect
import re
from collections import namedtuple
from decimal import Decimal, InvalidOperation

from ansible_collections.openeuler.kae.plugins.module_utils._validate import number_text_problem

# ASCII digits only, and no more of them than a thread id or an epoch time has.
_LINE_RE = re.compile(r"(?P<tid>[0-9]{1,10})@(?P<sec>[0-9]{1,11})\.(?P<usec>[0-9]{6}):(?P<name>[A-Za-z0-9_]+)(?:\s+(?P<args>.*))?\Z")

_MICROS_PER_SECOND = 1000000
_MICROS_PER_MS = Decimal(1000)
_MS_QUANTUM = Decimal("0.001")
_SECONDS_QUANTUM = Decimal("0.000001")
# Event times are epoch seconds (QEMU prints up to 11 digits); a clock offset beyond a day is no clock offset.
_MAX_EPOCH_S = Decimal(10) ** 11
_MAX_OFFSET_MS = Decimal(86400000)


class TraceError(ValueError):
    """The logs do not allow a downtime measurement; the message is meant for the operator."""


# One row per QEMU vocabulary: the source event that marks the guest's vCPUs stopping, the
# destination event that marks them running again, what to put in --trace to get both, and why
# an event may be missing. A regex of None matches any arguments.
Profile = namedtuple("Profile", "name src_event src_args dst_event dst_args trace_pattern hint")

PROFILES = (
    Profile(
        name="openeuler",
        src_event="all_vcpus_paused",
        src_args=None,
        dst_event="all_vcpus_prepared",
        dst_args=None,
        trace_pattern="all_vcpus*",
        hint="openEuler's QEMU prints it only when the domain XML has <qemu:arg value='--trace'/><qemu:arg value='all_vcpus*'/> "
        "in <qemu:commandline>; upstream QEMU has no such event (use profile=upstream there).",
    ),
    Profile(
        name="upstream",
        src_event="vm_state_notify",
        src_args=r"running 0 reason \d+ \(finish-migrate\)",
        dst_event="vm_state_notify",
        dst_args=r"running 1 reason \d+ \(running\)",
        trace_pattern="vm_state_notify",
        hint="QEMU prints it only when the domain XML has <qemu:arg value='--trace'/><qemu:arg value='vm_state_notify'/> "
        "in <qemu:commandline>.",
    ),
    # QEMU >= 8.2. Under libvirt the destination QEMU starts paused and libvirt resumes it
    # later, so dst-precopy-bh-vm-started comes before the guest runs: the upstream row is
    # QEMU's end of downtime (the VFIO resume handlers run after it), this one isolates QEMU's own share.
    Profile(
        name="downtime_checkpoint",
        src_event="vmstate_downtime_checkpoint",
        src_args=r"src-downtime-start",
        dst_event="vmstate_downtime_checkpoint",
        dst_args=r"dst-precopy-bh-vm-started",
        trace_pattern="vmstate_downtime_checkpoint",
        hint="QEMU 8.2 or later prints it only when the domain XML has <qemu:arg value='--trace'/>"
        "<qemu:arg value='vmstate_downtime_checkpoint'/> in <qemu:commandline>.",
    ),
)

PROFILE_BY_NAME = dict((row.name, row) for row in PROFILES)
# 'auto' takes the first of these whose source event is in the source log.
AUTO_ORDER = ("openeuler", "upstream")
PROFILE_CHOICES = ("auto",) + tuple(PROFILE_BY_NAME)


def profile_event_names(profile="auto"):
    """Names of the events a profile needs (for 'auto', those of every profile it may pick)."""
    names = AUTO_ORDER if profile == "auto" else (_profile(profile).name,)
    events = []
    for name in names:
        row = PROFILE_BY_NAME[name]
        for event in (row.src_event, row.dst_event):
            if event not in events:
                events.append(event)
    return events


def parse_line(line):
    """Return the event of one trace line as {ts, tid, name, args}, or None for anything else."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    match = _LINE_RE.match(line.strip())
    if match is None:
        return None
    return {
        # One correctly rounded conversion, whose repr() is the logged text again.
        "ts": float(match.group("sec") + "." + match.group("usec")),
        "tid": int(match.group("tid")),
        "name": match.group("name"),
        "args": match.group("args") or "",
    }


def _event_from_dict(item, what):
    """Check and normalise an already-parsed event, e.g. one returned by the qemu_trace_events module."""
    tid = item.get("tid") or 0
    ts = _decimal(item.get("ts"))
    tid_ok = (isinstance(tid, int) and not isinstance(tid, bool) and tid >= 0) or (isinstance(tid, str) and re.fullmatch("[0-9]{1,10}", tid))
    if not isinstance(item.get("name"), str) or ts is None or not 0 <= ts < _MAX_EPOCH_S or not tid_ok:
        raise TraceError("expected each event of the %s to be a dict with 'ts' (epoch seconds), 'name' and optionally 'tid' "
                         "(a number) and 'args', got %s" % (what, _describe(item)))
    return {"ts": float(ts), "tid": int(tid), "name": item["name"], "args": str(item.get("args") or "")}


def parse_events(log, what="log"):
    """Events of LOG: the raw text of a QEMU log, a list of its lines, a list of events, or a module result with 'events'.

    WHAT names the log in error messages (for example "source log").
    """
    if isinstance(log, (str, bytes)):
        lines = log.splitlines()
    elif isinstance(log, dict) and isinstance(log.get("events"), (list, tuple)):
        lines = log["events"]
    elif isinstance(log, (list, tuple)):
        lines = log
    else:
        raise TraceError("expected the %s to be the text of a QEMU log, a list of its lines or a list of events, got %s"
                         % (what, _describe(log)))
    events = []
    for item in lines:
        if isinstance(item, dict):
            events.append(_event_from_dict(item, what))
        elif isinstance(item, (str, bytes)):
            # An item may itself hold several lines (for example a whole file's content).
            events.extend(event for event in map(parse_line, item.splitlines()) if event is not None)
        else:
            raise TraceError("expected the %s to hold lines (strings) or events (dicts), got %s" % (what, _describe(item)))
    return events


def _describe(value):
    text = repr(value)
    return "%s %s" % (type(value).__name__, text if len(text) <= 60 else text[:57] + "...")


def _decimal(value):
    """VALUE (int, float or decimal text in ASCII digits) as an exact finite Decimal, or None when it is no such number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or number_text_problem(value, "value") is not None:
        return None
    try:
        # repr() of a float is its shortest round-trip text, which keeps the six logged decimals.
        number = Decimal(value.strip() if isinstance(value, str) else repr(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _micros(ts):
    """Integer microseconds of an event time already checked by parse_events."""
    return int((_decimal(ts) * _MICROS_PER_SECOND).to_integral_value())


def _profile(name):
    if not isinstance(name, str) or name not in PROFILE_BY_NAME:
        raise TraceError("unknown profile %r: choose one of %s" % (name, ", ".join(PROFILE_CHOICES)))
    return PROFILE_BY_NAME[name]


def _offset_micros(clock_offset_ms):
    value = _decimal(clock_offset_ms)
    if value is None or abs(value) > _MAX_OFFSET_MS:
        raise TraceError("clock_offset_ms must be a finite number of milliseconds (destination clock minus source clock) "
                         "between -%s and %s (one day), got %s" % (_MAX_OFFSET_MS, _MAX_OFFSET_MS, _describe(clock_offset_ms)))
    return value * _MICROS_PER_MS


def _matcher(event_name, args_pattern):
    regex = re.compile(args_pattern + r"\Z") if args_pattern else None
    return lambda event: event["name"] == event_name and (regex is None or regex.match(event["args"]) is not None)


def _select(events, event_name, args_pattern):
    """(microseconds, event) of the matching events, oldest first."""
    matches = _matcher(event_name, args_pattern)
    return sorted(((_micros(event["ts"]), event) for event in events if matches(event)), key=lambda pair: pair[0])


def _event_label(row, side):
    name, pattern = (row.src_event, row.src_args) if side == "source" else (row.dst_event, row.dst_args)
    return name + (" " + pattern.replace("\\d+", "N").replace("\\", "") if pattern else "")


def _resolve_profile(profile, src_events):
    """The profile row to use; 'auto' picks the first of AUTO_ORDER whose source event is present."""
    if profile != "auto":
        return _profile(profile)
    for name in AUTO_ORDER:
        row = PROFILE_BY_NAME[name]
        if _select(src_events, row.src_event, row.src_args):
            return row
    tried = " ".join("Profile %s needs '%s': %s" % (name, _event_label(PROFILE_BY_NAME[name], "source"), PROFILE_BY_NAME[name].hint)
                     for name in AUTO_ORDER)
    raise TraceError("the source log has no event marking the guest's pause for migration, for any profile that 'auto' tries. %s "
                     "Also check that this is the source host's /var/log/libvirt/qemu/DOMAIN.log, read from an offset taken "
                     "before the migration." % tried)


def has_pause(events, profile="auto"):
    """Whether EVENTS (a source log's) hold the event marking the guest's pause for migration, for PROFILE."""
    rows = [PROFILE_BY_NAME[name] for name in AUTO_ORDER] if profile == "auto" else [_profile(profile)]
    return any(_select(events, row.src_event, row.src_args) for row in rows)


def _missing_event(row, side):
    return TraceError("the %s log has no '%s' event (profile %s). %s Also check that this is the %s host's "
                      "/var/log/libvirt/qemu/DOMAIN.log, read from an offset taken before the migration."
                      % (side, _event_label(row, side), row.name, row.hint, side))


def _pause_label(pauses, index):
    return " (pause %d of %d in the source log)" % (index + 1, len(pauses)) if len(pauses) > 1 else ""


def _gap_and_correction(pause, resume, offset_us):
    gap_ms = _ms((Decimal(pause[0]) - (resume[0] - offset_us)) / _MICROS_PER_MS)
    corrected = " after correcting by clock_offset_ms %s" % _ms(offset_us / _MICROS_PER_MS) if offset_us else ""
    return gap_ms, corrected


def _resumed_before_paused(row, pause, resume, offset_us, which=""):
    """The error for a source PAUSE that no destination resume follows, RESUME being the latest one."""
    gap_ms, corrected = _gap_and_correction(pause, resume, offset_us)
    return TraceError(
        "the destination resumed ('%s' at %s) %s ms before the source paused ('%s' at %s%s)%s, so no migration can be measured: "
        "either the two hosts' clocks disagree by at least that much (synchronise them with NTP, or pass clock_offset_ms = "
        "destination clock minus source clock), or the destination log was read before the migration finished."
        % (_event_label(row, "destination"), resume[1]["ts"], gap_ms, _event_label(row, "source"), pause[1]["ts"], which, corrected))


def _resumed_while_on_source(row, pause, resume, offset_us, which):
    """The error for a PAUSE that a destination RESUME precedes while the guest was still on the source."""
    gap_ms, corrected = _gap_and_correction(pause, resume, offset_us)
    return TraceError(
        "the destination resumed ('%s' at %s) %s ms before the source paused for the migration at %s%s%s, and after the "
        "source's previous event, so that migration cannot be measured: the two hosts' clocks disagree by at least that much "
        "(synchronise them with NTP, or pass clock_offset_ms = destination clock minus source clock), or the guest ran on "
        "both hosts at once." % (_event_label(row, "destination"), resume[1]["ts"], gap_ms, pause[1]["ts"], which, corrected))


def _ran_on_source_again(row, pause, restart, which):
    """The error for a PAUSE after which the source ran the guest again before any destination resume."""
    return TraceError(
        "the source paused ('%s' at %s%s) and then ran the guest again ('%s' at %s) before any destination resume, so "
        "that migration did not complete (it failed or was aborted after the pause) and has no downtime to measure."
        % (_event_label(row, "source"), pause[1]["ts"], which, _event_label(row, "destination"), restart[1]["ts"]))


def _ms(value):
    return float(Decimal(value).quantize(_MS_QUANTUM))


class _Pairing:
    """Source pauses matched with destination resumes, on the source's clock.

    A pause ends at the first destination resume at or after it that comes before the source's next pause and
    before the source runs the guest again (its own resume event, a restart): a resume past those belongs to a
    later migration or to something else. When several pauses precede one resume, only the latest is the
    migration: the earlier ones were pauses that did not end on the destination (a suspend, a failed attempt).
    A destination resume between the source's previous event and a pause is early: with right clocks the guest
    cannot resume on the destination while it still runs on the source.
    """

    def __init__(self, pauses, resumes, restarts, offset_us):
        self.pauses, self.resumes, self.restarts = pauses, resumes, restarts
        self.corrected = [micros - offset_us for micros, _event in resumes]
        self.restart_times = [micros for micros, _event in restarts]
        self.pairs = {}
        self.early = {}
        for index in range(len(pauses)):
            self._match(index)

    def _match(self, index):
        micros = self.pauses[index][0]
        ends = [self.pauses[index + 1][0]] if index + 1 < len(self.pauses) else []
        restart = self.restart_after(index)
        if restart is not None:
            ends.append(restart[0])
        found = bisect.bisect_left(self.corrected, micros)
        if found < len(self.corrected) and (not ends or self.corrected[found] < min(ends)):
            self.pairs[index] = found
        bound = self._previous_source_event(index)
        if bound is not None and found > 0 and self.corrected[found - 1] > bound:
            self.early[index] = found - 1

    def _previous_source_event(self, index):
        """The latest of the previous pause, its resume and the source's last restart before pause INDEX; None when none."""
        micros = self.pauses[index][0]
        candidates = []
        if index > 0:
            candidates.append(self.pauses[index - 1][0])
            if index - 1 in self.pairs:
                candidates.append(self.corrected[self.pairs[index - 1]])
        before = bisect.bisect_left(self.restart_times, micros)
        if before > 0:
            candidates.append(self.restart_times[before - 1])
        return max(candidates) if candidates else None

    def restart_after(self, index):
        """The source's first restart (microseconds, event) after pause INDEX, or None."""
        later = bisect.bisect_right(self.restart_times, self.pauses[index][0])
        return self.restarts[later] if later < len(self.restarts) else None


def _record(row, pause, resume, offset_us):
    raw_us = resume[0] - pause[0]
    return {
        "downtime_ms": _ms((raw_us - offset_us) / _MICROS_PER_MS),
        "raw_downtime_ms": _ms(Decimal(raw_us) / _MICROS_PER_MS),
        "paused_at": pause[1]["ts"],
        "resumed_at": float(((resume[0] - offset_us) / _MICROS_PER_SECOND).quantize(_SECONDS_QUANTUM)),
        "profile": row.name,
        "src_event": pause[1],
        "dst_event": resume[1],
        "clock_offset_ms": _ms(offset_us / _MICROS_PER_MS),
    }


def _analyse(src_log, dst_log, profile, clock_offset_ms):
    offset_us = _offset_micros(clock_offset_ms)
    src_events = parse_events(src_log, "source log")
    dst_events = parse_events(dst_log, "destination log")
    row = _resolve_profile(profile, src_events)
    pauses = _select(src_events, row.src_event, row.src_args)
    if not pauses:
        raise _missing_event(row, "source")
    resumes = _select(dst_events, row.dst_event, row.dst_args)
    if not resumes:
        raise _missing_event(row, "destination")
    # The source's own resume events: the guest running there again (a failed attempt, or back from a migration).
    restarts = _select(src_events, row.dst_event, row.dst_args)
    return row, offset_us, _Pairing(pauses, resumes, restarts, offset_us)


def _checked_record(row, offset_us, pairing, index):
    """The migration that pause INDEX starts; TraceError when it has no destination resume or an early one."""
    pause = pairing.pauses[index]
    which = _pause_label(pairing.pauses, index)
    if index in pairing.early:
        raise _resumed_while_on_source(row, pause, pairing.resumes[pairing.early[index]], offset_us, which)
    if index not in pairing.pairs:
        restart = pairing.restart_after(index)
        if restart is not None:
            raise _ran_on_source_again(row, pause, restart, which)
        raise _resumed_before_paused(row, pause, pairing.resumes[-1], offset_us, which)
    return _record(row, pause, pairing.resumes[pairing.pairs[index]], offset_us)


def migrations(src_log, dst_log, profile="auto", clock_offset_ms=0.0):
    """Every migration found in the two logs, oldest first (see latest_migration for the fields).

    Pauses without a destination resume (suspends, failed attempts) are left out. A pause whose destination resume
    came before it while the guest was still on the source raises TraceError naming it, as do logs without any
    migration.
    """
    row, offset_us, pairing = _analyse(src_log, dst_log, profile, clock_offset_ms)
    found = [_checked_record(row, offset_us, pairing, index) for index in range(len(pairing.pauses))
             if index in pairing.pairs or index in pairing.early]
    if not found:
        _checked_record(row, offset_us, pairing, len(pairing.pauses) - 1)
    return found


def latest_migration(src_log, dst_log, profile="auto", clock_offset_ms=0.0):
    """The migration that ends with the latest source pause.

    Returns {downtime_ms, raw_downtime_ms, paused_at, resumed_at, profile, src_event, dst_event,
    clock_offset_ms}: downtime_ms is corrected by clock_offset_ms, raw_downtime_ms is not,
    resumed_at is on the source's clock. Raises TraceError when the latest source pause has no
    destination resume after it (or one that came early), rather than answering with an older migration.
    """
    row, offset_us, pairing = _analyse(src_log, dst_log, profile, clock_offset_ms)
    return _checked_record(row, offset_us, pairing, len(pairing.pauses) - 1)
