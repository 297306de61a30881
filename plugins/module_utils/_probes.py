# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Network-observed downtime from a recorded probe series.

A series is what one probe sender saw: per probe its sequence number, when it was sent and when its answer
came back (or nothing, when it was lost). Every time is on the sender's own clock, so no clock offset between
hosts enters the figure.

The network downtime is the longest time the sender went without an answer: the largest gap between two
consecutive answers, in the order they arrived. It never goes below the spacing of the probes (with no loss at
all it is about one probe interval), so its resolution is the probe interval. The sender's own jitter (its send
spacing against the configured interval) is measured alongside: a gap no longer than the sender's own largest
stall says more about the sender than about the guest.

parse_fping reads the output of fping run with -D (timestamps) and -c (count): one line per answer and per
probe that timed out, then the per-target statistics.
"""

from __future__ import annotations

import re

from ansible_collections.openeuler.kae.plugins.module_utils import _validate

# Trailing unanswered probes spanning more than this (and more than the largest gap) mean the guest still did
# not answer when the probes stopped; fewer are the answers still in flight when the sender was stopped.
OPEN_END_MIN_MS = 100.0

_TS = r"^\[(?P<ts>[0-9]+(?:\.[0-9]+)?)\] \S+ : "
_REPLY_RE = re.compile(_TS + r"\[(?P<seq>[0-9]+)\], [0-9]+ bytes, (?P<rtt>[0-9]+(?:\.[0-9]+)?) ms")
_DUPLICATE_RE = re.compile(_TS + r"duplicate for \[(?P<seq>[0-9]+)\], [0-9]+ bytes, (?P<rtt>[0-9]+(?:\.[0-9]+)?) ms")
_TIMEOUT_RE = re.compile(_TS + r"\[(?P<seq>[0-9]+)\], timed out")
_SUMMARY_RE = re.compile(r"^\S+ : xmt/rcv/%loss = (?P<sent>[0-9]+)/(?P<received>[0-9]+)/")


class ProbeError(ValueError):
    """The probe series cannot give a figure; the message says why."""


def _answer(match):
    received = float(match["ts"])
    return {"seq": int(match["seq"]), "sent": round(received - float(match["rtt"]) / 1000.0, 6), "received": received}


def parse_fping(text):
    """The probe series in TEXT, the output of ``fping -D -c COUNT`` for one target (stdout and stderr).

    Returns a dict: ``probes``, a list of {seq, sent, received} (sequence numbers from 0, as fping counts; sent is
    the receive time minus the round-trip time; a probe that timed out has sent and received null; a duplicate
    answer is listed again), and ``transmitted``, the count from fping's closing statistics (None when it printed
    none, for example when it was killed).
    """
    _validate.text(text, "the fping output", allow_empty=True)
    probes, transmitted = [], None
    for line in text.splitlines():
        line = line.strip()
        match = _REPLY_RE.match(line) or _DUPLICATE_RE.match(line)
        if match:
            probes.append(_answer(match))
            continue
        match = _TIMEOUT_RE.match(line)
        if match:
            probes.append({"seq": int(match["seq"]), "sent": None, "received": None})
            continue
        match = _SUMMARY_RE.match(line)
        if match:
            transmitted = int(match["sent"])
    return {"probes": probes, "transmitted": transmitted}


def _check_probe(index, probe):
    where = "probe %d" % (index + 1)
    _validate.mapping(probe, where)
    seq = _validate.number(probe.get("seq"), where + " seq", minimum=0, integer=True)
    times = []
    for key in ("sent", "received"):
        value = probe.get(key)
        times.append(None if value is None else float(_validate.number(value, "%s %s" % (where, key))))
    if times[0] is not None and times[1] is not None and times[1] < times[0]:
        raise ProbeError("%s: received %s before it was sent %s" % (where, times[1], times[0]))
    return seq, times[0], times[1]


def _answers(probes):
    """(first answer per sequence number as {seq: (sent, received)}, number of duplicate answers)."""
    answers, duplicates = {}, 0
    for index, probe in enumerate(probes):
        try:
            seq, sent, received = _check_probe(index, probe)
        except _validate.InputError as exc:
            raise ProbeError(str(exc)) from None
        if received is None:
            continue
        if seq in answers:
            duplicates += 1
            if received >= answers[seq][1]:
                continue
        answers[seq] = (sent, received)
    return answers, duplicates


def _largest_gap(answers):
    """(gap ms, seq answered before it, seq answered after it) between answers in the order they arrived."""
    arrivals = sorted((received, seq) for seq, (_sent, received) in answers.items())
    best = (0.0, None, None)
    for (before, seq_before), (after, seq_after) in zip(arrivals, arrivals[1:]):
        gap = (after - before) * 1000.0
        if gap > best[0]:
            best = (gap, seq_before, seq_after)
    return best


def sender_jitter(answers, interval_ms):
    """The sender's send spacing against INTERVAL_MS, from probes n and n+1 that were both answered."""
    spacings = []
    for seq, (sent, _received) in answers.items():
        following = answers.get(seq + 1)
        if sent is not None and following is not None and following[0] is not None:
            spacings.append((following[0] - sent) * 1000.0)
    if not spacings:
        return {"probe_jitter_ms": None, "send_spacing_mean_ms": None, "send_spacing_max_ms": None, "spacings": 0}
    return {"probe_jitter_ms": round(max(abs(s - interval_ms) for s in spacings), 3),
            "send_spacing_mean_ms": round(sum(spacings) / len(spacings), 3),
            "send_spacing_max_ms": round(max(spacings), 3), "spacings": len(spacings)}


def _open_end(answers, probes_sent, gap_ms, interval_ms):
    """Why the series ends inside a gap (the guest still unanswered when the sender stopped), or None."""
    last_answered = max(answers)
    trailing = probes_sent - 1 - last_answered
    span_ms = trailing * interval_ms
    if span_ms > OPEN_END_MIN_MS and span_ms > gap_ms:
        return ("the last %d probes (about %.0f ms) got no answer: the guest was still unreachable when the probes "
                "stopped, so the network downtime is not known" % (trailing, span_ms))
    return None


def analyse(probes, interval_ms, transmitted=None):
    """The network-observed downtime and the sender's jitter of one probe series.

    PROBES is a list of {seq, sent, received} (received null for a lost probe; a sequence number may appear more
    than once, answered twice or listed lost and answered later), INTERVAL_MS the configured probe interval and
    TRANSMITTED the number of probes sent when the sender counted them (else the highest sequence number seen
    plus one: sequence numbers count from 0). Raises ProbeError when the series cannot give a figure.
    """
    if not isinstance(probes, list):
        raise ProbeError("the probe series must be a list of probes, got %s" % type(probes).__name__)
    try:
        interval_ms = float(_validate.number(interval_ms, "interval_ms", minimum=0.001))
        if transmitted is not None:
            _validate.number(transmitted, "transmitted", minimum=0, integer=True)
    except _validate.InputError as exc:
        raise ProbeError(str(exc)) from None
    answers, duplicates = _answers(probes)
    seen = [p["seq"] for p in probes]
    probes_sent = transmitted if transmitted is not None else (max(seen) + 1 if seen else 0)
    answered = sum(1 for seq in answers if seq < probes_sent)
    if answered < 2:
        raise ProbeError("%d of %d probes were answered: at least 2 answers are needed to measure a gap; "
                         "check that the guest's address answers ICMP echo from the probe host" % (answered, probes_sent))
    gap_ms, seq_before, seq_after = _largest_gap(answers)
    low, high = sorted((seq_before, seq_after))
    result = {
        "network_downtime_ms": round(gap_ms, 3),
        "probes_sent": probes_sent,
        "probes_lost": probes_sent - answered,
        "probes_duplicated": duplicates,
        "probe_interval_ms": interval_ms,
        "gap_started_at": answers[seq_before][1],
        "gap_ended_at": answers[seq_after][1],
        "lost_in_gap": sum(1 for seq in range(low + 1, high) if seq not in answers),
    }
    result.update(sender_jitter(answers, interval_ms))
    # A gap without a lost probe in it is a pause of the sender (or of the path), not of the guest.
    result["sender_limited"] = result["lost_in_gap"] == 0
    problem = _open_end(answers, probes_sent, gap_ms, interval_ms)
    if problem:
        raise ProbeError(problem)
    return result


def analyse_fping(text, interval_ms):
    """analyse() of the output of ``fping -D -c COUNT`` for one target."""
    parsed = parse_fping(text)
    return analyse(parsed["probes"], interval_ms, transmitted=parsed["transmitted"])
