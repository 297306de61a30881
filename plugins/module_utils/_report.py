# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""The migration report: its data (report.json) and its renderings (report.md, junit.xml, downtime.svg).

Everything here is pure: rounds and environment in, strings out. Writing the files is the
migration_report module's job.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import xml.etree.ElementTree as ET

from ansible_collections.openeuler.kae.plugins.module_utils import _record
from ansible_collections.openeuler.kae.plugins.module_utils._stats import downtime_stats
from ansible_collections.openeuler.kae.plugins.module_utils._validate import number_text_problem

REPORT_FILES = ("report.json", "report.md", "junit.xml", "downtime.svg")
NUMBER_FIELDS = ("downtime_ms", "raw_downtime_ms", "libvirt_downtime_ms", "libvirt_downtime_net_ms", "libvirt_total_time_ms",
                 "clock_offset_ms", "duration_s", "paused_at", "resumed_at", "threshold_ms",
                 "network_downtime_ms", "probe_interval_ms", "probe_jitter_ms")
STATUSES = _record.STATUSES
# A run id names a directory next to `latest`: one safe path component.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]*")
# Characters XML 1.0 cannot carry at all, even escaped.
XML_INVALID_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class ReportError(ValueError):
    """The rounds or the environment cannot make a report; the message says why and what to fix."""


# ---------------------------------------------------------------- report data

def check_run_id(run_id):
    """Return RUN_ID when it can name a report directory, else raise ReportError."""
    text = "" if run_id is None else str(run_id)
    if text == "latest" or not RUN_ID_PATTERN.fullmatch(text):
        raise ReportError(
            "run id %r cannot name a report directory: use letters, digits and . _ : + - only, "
            "starting with a letter or digit, and not 'latest' (for example 20261125T182300Z)" % (text,))
    return text


def check_threshold(threshold_ms):
    """Return the threshold as a float of milliseconds, or raise ReportError."""
    value = _number(threshold_ms)
    if value is None or value <= 0:
        raise ReportError("threshold_ms must be a number of milliseconds above 0, got %r" % (threshold_ms,))
    return value


def build_report(rounds, environment, threshold_ms, run_id, generated_at, evacuation=None):
    """Return the report.json data for ROUNDS (list of dicts) measured against THRESHOLD_MS.

    With EVACUATION (a host evacuation: each round is one guest's migration) the report also has an ``evacuation``
    section: a row per guest, the guests skipped, the limits, and how many migrations ran at once.
    """
    threshold = check_threshold(threshold_ms)
    checked = normalise_rounds(rounds, threshold)
    report = {
        "run_id": check_run_id(run_id),
        "generated_at": generated_at,
        "summary": summarise(checked, threshold),
        "rounds": checked,
        "environment": normalise_environment(environment),
    }
    if evacuation is not None:
        report["evacuation"] = build_evacuation(evacuation, checked)
        report["summary"]["max_concurrent"] = report["evacuation"]["max_concurrent"]
    return report


# ---------------------------------------------------------------- evacuation

def _evacuation_guests(evacuation):
    """{guest: {vfs_before, vfs_after, batch}} from the plan's batched placements and its moving guests."""
    placements, moving = evacuation.get("placements") or [], evacuation.get("moving") or {}
    if not isinstance(placements, list) or not all(isinstance(item, dict) and isinstance(item.get("guest"), str) for item in placements):
        raise ReportError("evacuation.placements must be the plan's placements, each with guest, batch and vfs, got %r" % (placements,))
    if not isinstance(moving, dict):
        raise ReportError("evacuation.moving must be the plan's moving guests {guest: {vfs}}, got %r" % (moving,))
    rows = {}
    for item in placements:
        before = moving.get(item["guest"]) if isinstance(moving.get(item["guest"]), dict) else {}
        rows[item["guest"]] = {"batch": item.get("batch"), "vfs_after": item.get("vfs") or [], "vfs_before": before.get("vfs") or []}
    return rows


def _ended_at(item):
    if item["started_at"] is None or item["duration_s"] is None:
        return None
    return item["started_at"] + item["duration_s"]


def build_evacuation(evacuation, rounds):
    """The evacuation section: a row per guest (from its round and its plan row), the skipped guests, concurrency."""
    if not isinstance(evacuation, dict):
        raise ReportError("evacuation must be a mapping {host, placements, moving, skipped, limits}, got %s" % type(evacuation).__name__)
    planned = _evacuation_guests(evacuation)
    rows = []
    for item in rounds:
        plan_row = planned.get(item["guest"]) or {}
        mapping = item.get("kae_vf_mapping") or {}
        rows.append({
            "guest": item["guest"], "source": item["source"], "destination": item["destination"],
            "batch": plan_row.get("batch"),
            "vfs_before": sorted(plan_row.get("vfs_before") or mapping.keys()),
            # The VFs the migration gave the guest; the planned ones when it reports none (a lab guest holds no real VF).
            "vfs_after": sorted(mapping.values()) if mapping else sorted(plan_row.get("vfs_after") or []),
            "downtime_ms": item["downtime_ms"], "libvirt_downtime_ms": item["libvirt_downtime_ms"],
            "network_downtime_ms": item["network_downtime_ms"], "probe_from": item["probe_from"],
            "duration_s": item["duration_s"], "started_at": item["started_at"], "ended_at": _ended_at(item),
            "status": item["status"], "message": item["message"],
        })
    skipped = evacuation.get("skipped") or []
    if not isinstance(skipped, list):
        raise ReportError("evacuation.skipped must be a list of the plan's unplaced guests, got %r" % (skipped,))
    return {"host": evacuation.get("host"), "limits": dict(evacuation.get("limits") or {}), "guests": rows,
            "skipped": [{"guest": entry.get("guest"), "reasons": [reason.get("reason") for reason in entry.get("reasons") or []
                                                                  if isinstance(reason, dict)]}
                        for entry in skipped if isinstance(entry, dict)],
            "max_concurrent": max_concurrent(rows)}


def max_concurrent(rows):
    """The most migrations that ran at the same moment, from their start and end times."""
    events = []
    for row in rows:
        if row["started_at"] is not None and row["ended_at"] is not None:
            # An end sorts before a start at the same instant: back-to-back migrations did not overlap.
            events.extend(((row["started_at"], 1), (row["ended_at"], -1)))
    running = most = 0
    for _moment, step in sorted(events, key=lambda event: (event[0], event[1])):
        running += step
        most = max(most, running)
    return most


def same_report(old, new):
    """True when two report dicts differ at most in generated_at (a re-run of the same run id)."""
    if not isinstance(old, dict):
        return False
    return dict(old, generated_at=None) == dict(new, generated_at=None)


def normalise_rounds(rounds, threshold_ms):
    """Check the rounds and give each its final status against the threshold."""
    if not isinstance(rounds, list):
        raise ReportError("rounds must be a list of round dicts, got %s" % type(rounds).__name__)
    if not rounds:
        raise ReportError("rounds is empty: no migration round ran, so there is nothing to report; "
                          "check the migration role's output for the reason")
    return [_normalise_round(index, item, threshold_ms) for index, item in enumerate(rounds, start=1)]


def _normalise_round(index, item, threshold_ms):
    """ITEM checked against the record contract (exactly its keys), with its final status and message."""
    try:
        _record.check_record(item, "round %d" % index)
    except _record.RecordError as exc:
        raise ReportError(str(exc)) from None
    out = dict(item)
    if out["round"] is None:
        out["round"] = index
    for field in NUMBER_FIELDS:
        out[field] = _round_number(index, field, out[field])
    out["clock_corrected"] = out["clock_corrected"] is True
    out["status"], out["message"] = _verdict(out["status"], out["downtime_ms"], out["error"], threshold_ms)
    return out


def _round_number(index, field, value):
    number = _number(value)
    if value is not None and number is None:
        raise ReportError("round %d: %s must be a number or null, got %r" % (index, field, value))
    return number


def _verdict(status, downtime_ms, error, threshold_ms):
    """Return (status, message): the round's result and, when it did not pass, why."""
    if status == "error" or (downtime_ms is None and status == "passed"):
        return "error", str(error or "the round measured no downtime")
    if downtime_ms is not None and downtime_ms < 0:
        return "error", ("negative downtime %s ms: the destination resumed before the source paused by their clocks; "
                         "synchronise both hosts' clocks (NTP) and check the clock offset correction" % fmt_ms(downtime_ms))
    if status == "failed" and error:
        return "failed", str(error)
    if downtime_ms is not None and downtime_ms > threshold_ms:
        return "failed", "downtime %s ms exceeds the %s ms threshold" % (fmt_ms(downtime_ms), fmt_ms(threshold_ms))
    if status == "failed":
        return "failed", "the round failed"
    return "passed", None


def _over(item, threshold_ms):
    return item["downtime_ms"] is not None and item["downtime_ms"] > threshold_ms


def summarise(rounds, threshold_ms):
    """Summary of the checked rounds: downtime statistics plus the verdict over every round."""
    values = [item["downtime_ms"] for item in rounds if item["downtime_ms"] is not None and item["downtime_ms"] >= 0]
    summary = {"count": len(rounds), "measured": len(values)}
    if values:
        summary.update(downtime_stats(values, threshold_ms))
    else:
        summary.update(min_ms=None, median_ms=None, max_ms=None)
    counts = dict((status, sum(1 for item in rounds if item["status"] == status)) for status in STATUSES)
    summary.update(
        count=len(rounds), threshold_ms=threshold_ms,
        rounds_passed=counts["passed"], rounds_failed=counts["failed"], rounds_errored=counts["error"],
        passed=counts["passed"] == len(rounds),
        rounds_clock_uncorrected=sum(1 for item in rounds if not item["clock_corrected"]),
    )
    return summary


def normalise_environment(environment):
    """Return the environment with every documented key present (None or empty when unknown)."""
    env = dict(environment or {})
    guest = env.get("guest")
    env["guest"] = dict(guest) if isinstance(guest, dict) else {}
    for key in ("name", "vcpus", "memory_mib"):
        env["guest"].setdefault(key, None)
    for key in ("hosts", "devices"):
        value = env.get(key)
        env[key] = list(value) if isinstance(value, (list, tuple)) else ([] if value is None else [value])
    for key in ("qemu_version", "libvirt_version"):
        env.setdefault(key, None)
    env["lab"] = bool(env.get("lab"))
    return env


def _number(value):
    """VALUE as a finite float, or None when it is null or not a number."""
    if value is None or isinstance(value, bool) or (isinstance(value, str) and number_text_problem(value, "value")):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------- text helpers

def fmt_ms(value):
    """Milliseconds for people: 158, 127.5, 0.001; n/a when unknown."""
    if value is None:
        return "n/a"
    if abs(value) >= 1:
        text = "%.1f" % value
        return text[:-2] if text.endswith(".0") else text
    return "%.3g" % value


def fmt_time(value):
    """An epoch time as ISO 8601 UTC with microseconds (as QEMU traces them); any other value as given."""
    seconds = _number(value)
    if seconds is None:
        return "n/a" if value in (None, "") else str(value)
    try:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def direction(item):
    return "%s -> %s" % (item.get("source") or "?", item.get("destination") or "?")


def summary_line(report):
    """The verdict in one line, like the openEuler test report's: max 158 ms <= 200 ms target: PASSED."""
    summary = report["summary"]
    threshold = fmt_ms(summary["threshold_ms"])
    verdict = "PASSED" if summary["passed"] else "FAILED"
    if summary["max_ms"] is None:
        return "no round measured a downtime (%d of %d rounds errored), %s ms target: %s" % (
            summary["rounds_errored"], summary["count"], threshold, verdict)
    within = summary["max_ms"] <= summary["threshold_ms"]
    line = "max %s ms %s %s ms target" % (fmt_ms(summary["max_ms"]), "<=" if within else ">", threshold)
    # Rounds that did not pass for a reason other than their downtime are named apart.
    others = sum(1 for item in report["rounds"] if item["status"] != "passed" and not _over(item, summary["threshold_ms"]))
    if others:
        line += ", %d of %d rounds failed or errored" % (others, summary["count"])
    return "%s: %s%s" % (line, verdict, _clock_note(summary))


def _clock_note(summary):
    """Said after the verdict when a downtime was not corrected by measured clock offsets (no NTP server given)."""
    uncorrected = summary["rounds_clock_uncorrected"]
    if not uncorrected:
        return ""
    return (" (clocks not measured in %d of %d rounds: their downtime is not corrected for the hosts' clock offset; "
            "give NTP servers to correct it)" % (uncorrected, summary["count"]))


def _cell(value):
    """Text that stays inside one markdown table cell or list item and starts no HTML tag; n/a when empty."""
    if value in (None, ""):
        return "n/a"
    return " ".join(_xml_text(value).split()).replace("|", "\\|").replace("<", "\\<")


def _md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines.extend("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- report.md

def render_table(report):
    """The performance table: round | downtime ms | libvirt downtime ms | network downtime ms | direction | result.

    An evacuation has a row per guest instead.
    """
    if report.get("evacuation"):
        return render_guest_table(report)
    rows = [(item["round"], fmt_ms(item["downtime_ms"]), fmt_ms(item["libvirt_downtime_ms"]), network_cell(item),
             direction(item), item["status"])
            for item in report["rounds"]]
    return _md_table(("Round", "Downtime (ms)", "libvirt downtime (ms)", "Network downtime (ms)", "Direction", "Result"), rows)


def network_cell(item):
    """The network-observed downtime, or why there is none."""
    if item["network_downtime_ms"] is not None:
        return fmt_ms(item["network_downtime_ms"])
    return "not probed" if item["probe_from"] is None else "probe failed"


NETWORK_HEADING = ("## What the guest's clients saw\n\nICMP echo to the guest during each migration; the network downtime is "
                   "the longest wait between two answers (see docs/downtime.md).\n")


def render_network(report):
    """What the probes saw, per round (per guest for an evacuation): the figure, probes sent and lost, interval,
    the sender's jitter, from where."""
    unit = "guest" if report.get("evacuation") else "round"
    rows = [(item[unit], network_cell(item), _cell(item["probes_sent"]), _cell(item["probes_lost"]),
             fmt_ms(item["probe_interval_ms"]), fmt_ms(item["probe_jitter_ms"]), _cell(item["probe_from"]),
             _cell(item["probe_error"] or "")) for item in report["rounds"]]
    return _md_table((unit.capitalize(), "Network downtime (ms)", "Probes sent", "Probes lost", "Interval (ms)", "Sender jitter (ms)",
                      "Probed from", "Note"), rows)


def _vfs_cell(vfs):
    return ", ".join(vfs) if vfs else "none"


def render_guest_table(report):
    """The evacuation table: a row per guest."""
    rows = [(row["guest"], row["source"], row["destination"], _vfs_cell(row["vfs_before"]), _vfs_cell(row["vfs_after"]),
             fmt_ms(row["downtime_ms"]), fmt_ms(row["libvirt_downtime_ms"]), network_cell(row),
             "n/a" if row["duration_s"] is None else "%.2f" % row["duration_s"], row["batch"], row["status"])
            for row in report["evacuation"]["guests"]]
    return _md_table(("Guest", "From", "To", "VFs before", "VFs after", "Downtime (ms)", "libvirt downtime (ms)",
                      "Network downtime (ms)", "Migration (s)", "Batch", "Result"), rows)


def render_evacuation_markdown(report):
    """report.md of a host evacuation."""
    summary, evacuation = report["summary"], report["evacuation"]
    limits = evacuation["limits"]
    parts = [
        "# KAE host evacuation report %s\n" % report["run_id"],
        "Generated at %s: %d guest(s) migrated off %s, downtime threshold %s ms; at most %s migration(s) per source, %s per "
        "destination, %s in all; %d ran at once at most.\n" % (
            fmt_time(report["generated_at"]), summary["count"], _cell(evacuation["host"]), fmt_ms(summary["threshold_ms"]),
            _cell(limits.get("per_source")), _cell(limits.get("per_destination")), _cell(limits.get("total")),
            evacuation["max_concurrent"]),
        "## Guests\n",
        render_guest_table(report),
        "**%s**\n" % summary_line(report),
    ]
    if summary["measured"]:
        parts.append("Over %d measured migration(s): min %s ms, median %s ms, mean %s ms, p95 %s ms, max %s ms.\n" % (
            summary["measured"], fmt_ms(summary["min_ms"]), fmt_ms(summary["median_ms"]), fmt_ms(summary.get("mean_ms")),
            fmt_ms(summary.get("p95_ms")), fmt_ms(summary["max_ms"])))
    problems = [row for row in evacuation["guests"] if row["message"]]
    if problems:
        parts.append("".join("- %s (%s): %s\n" % (_cell(row["guest"]), row["status"], _cell(row["message"])) for row in problems))
    if evacuation["skipped"]:
        parts.append("Skipped (no host can take them; they stay on %s):\n\n%s" % (_cell(evacuation["host"]), "".join(
            "- %s: %s\n" % (_cell(entry["guest"]), _cell("; ".join(map(str, entry["reasons"])))) for entry in evacuation["skipped"])))
    parts.extend([
        "![Downtime per guest against the threshold](downtime.svg)\n",
        "![Migrations over time](timeline.svg)\n",
    ])
    if has_progress(report):
        parts.append("![Memory left to send over time, per migration](progress.svg)\n")
    parts.extend([
        NETWORK_HEADING,
        render_network(report),
        "## Environment\n",
        render_environment(report["environment"]),
    ])
    return "\n".join(parts)


def render_markdown(report):
    """The whole report.md."""
    if report.get("evacuation"):
        return render_evacuation_markdown(report)
    summary = report["summary"]
    parts = [
        "# KAE live migration report %s\n" % report["run_id"],
        "Generated at %s: %d round(s) of live migration of guest %s, downtime threshold %s ms.\n" % (
            fmt_time(report["generated_at"]), summary["count"], _cell(report["environment"]["guest"]["name"]),
            fmt_ms(summary["threshold_ms"])),
        "## Downtime\n",
        render_table(report),
        "**%s**\n" % summary_line(report),
    ]
    if summary["measured"]:
        parts.append("Over %d measured round(s): min %s ms, median %s ms, max %s ms.\n" % (
            summary["measured"], fmt_ms(summary["min_ms"]), fmt_ms(summary["median_ms"]), fmt_ms(summary["max_ms"])))
    problems = [item for item in report["rounds"] if item["message"]]
    if problems:
        parts.append("".join("- Round %s (%s): %s\n" % (item["round"], item["status"], _cell(item["message"])) for item in problems))
    parts.append("![Downtime per round against the threshold](downtime.svg)\n")
    if has_progress(report):
        parts.extend(["## Convergence\n", render_convergence(report),
                      "![Memory left to send over time, per migration](progress.svg)\n"])
    if len(sweep_rows(report)) > 1:
        parts.extend(["## Tuning curve\n", "Measured downtime and migration time against the maximum downtime each migration "
                      "ended at (medians over its migrated rounds).\n", render_sweep_table(report),
                      "![Downtime and migration time against the maximum downtime](sweep.svg)\n"])
    parts.extend([
        NETWORK_HEADING,
        render_network(report),
        "## Rounds in detail\n",
        _md_table(("Round", "Profile", "Clock offset (ms)", "Started at", "Duration (s)", "Paused at", "Resumed at"),
                  [(item["round"], item["profile"], _clock_cell(item), fmt_time(item["started_at"]),
                    "n/a" if item["duration_s"] is None else "%.2f" % item["duration_s"],
                    fmt_time(item["paused_at"]), fmt_time(item["resumed_at"])) for item in report["rounds"]]),
        "## Environment\n",
        render_environment(report["environment"]),
    ])
    return "\n".join(parts)


def has_progress(report):
    return any(item["progress"] for item in report["rounds"])


def step_cell(item):
    """The maximum downtime the migration ended at and the schedule's step (0: the first value)."""
    if item["max_downtime_final_ms"] is None:
        return "n/a"
    return "%s (step %s)" % (fmt_ms(item["max_downtime_final_ms"]), _cell(item["downtime_step"]))


def limit_cell(item):
    limit = item["limit"]
    if not limit:
        return "none"
    return "%s %s s (at %s s)" % (_cell(limit.get("name")), _cell(limit.get("value_s")), _cell(limit.get("at_s")))


def paused_cell(item):
    suspended = item["suspended"]
    if not suspended:
        return "no"
    return "%s s from %s s (%s)" % (_cell(suspended.get("paused_s")), _cell(suspended.get("at_s")), _cell(suspended.get("limit")))


def render_convergence(report):
    """Per round: the progress samples taken, the maximum downtime it ended at (its step), the limit that fired, the pause."""
    rows = [(item["round"], len(item["progress"]), _cell(_last_figure(item, "iteration")), step_cell(item), limit_cell(item),
             paused_cell(item)) for item in report["rounds"]]
    return _md_table(("Round", "Progress samples", "Passes", "Max downtime (ms)", "Limit fired", "Guest paused"), rows)


def _last_figure(item, key):
    return item["progress"][-1].get(key) if item["progress"] and isinstance(item["progress"][-1], dict) else None


def _clock_cell(item):
    return fmt_ms(item["clock_offset_ms"]) if item["clock_corrected"] else "not measured (uncorrected)"


def render_environment(env):
    """The environment as a markdown list; in the lab it says what is simulated."""
    guest = env["guest"]
    lines = [
        "- Hosts: %s" % _cell(", ".join(str(host) for host in env["hosts"])),
        "- QEMU: %s; libvirt: %s" % (_cell(env["qemu_version"]), _cell(env["libvirt_version"])),
        "- Guest: %s, %s vCPU, %s MiB" % (_cell(guest["name"]), _cell(guest["vcpus"]), _cell(guest["memory_mib"])),
    ]
    devices = [describe_device(device) for device in env["devices"]]
    label = "Devices (simulated in the lab)" if env["lab"] else "Devices"
    lines.append("- %s: %s" % (label, "none listed" if not devices else ""))
    lines.extend("  - %s" % _cell(text) for text in devices)
    if env["lab"]:
        lines.append("- Lab run: the KAE devices are simulated sysfs trees and the guest runs under TCG emulation; "
                     "the figures show the procedure works, not Kunpeng hardware performance.")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def describe_device(device):
    """One line for a device: a device_info dict or any other value as text."""
    if not isinstance(device, dict):
        return str(device)
    details = ["%s:%s" % (device.get("vendor") or "?", device.get("device") or "?")]
    for key, label in (("driver", "driver"), ("numa_node", "NUMA node"), ("revision", "rev")):
        if device.get(key) is not None:
            details.append("%s %s" % (label, device[key]))
    if device.get("domain"):
        details.append("assigned to %s" % device["domain"])
    name = " ".join(str(device[key]).upper() for key in ("engine", "function") if device.get(key))
    return "%s %s (%s)" % (name or "device", device.get("bdf") or "?", ", ".join(details))


# ---------------------------------------------------------------- junit.xml

def _xml_text(value):
    """VALUE as text XML can carry: invalid control characters dropped (ElementTree escapes the rest)."""
    return XML_INVALID_CHARS.sub("", str(value))


def _element(parent, tag, **attrs):
    # Keyword arguments spell XML's hyphenated attribute names with underscores (font_size=...).
    attrs = dict((key.replace("_", "-"), _xml_text(value)) for key, value in attrs.items() if value is not None)
    return ET.Element(tag, attrs) if parent is None else ET.SubElement(parent, tag, attrs)


def _xml_document(root):
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_junit(report):
    """junit.xml: one testsuite, one testcase per round; failure/error elements say why."""
    summary = report["summary"]
    total_time = "%.3f" % sum(item["duration_s"] or 0 for item in report["rounds"])
    counts = dict(tests=str(summary["count"]), failures=str(summary["rounds_failed"]),
                  errors=str(summary["rounds_errored"]), skipped="0", time=total_time)
    suites = _element(None, "testsuites", name="openeuler.kae migration report", **counts)
    suite = _element(suites, "testsuite", name="kae live migration %s" % report["run_id"],
                     timestamp=report["generated_at"], **counts)
    properties = _element(suite, "properties")
    for name in ("run_id", "generated_at"):
        _element(properties, "property", name=name, value=report[name])
    _element(properties, "property", name="threshold_ms", value=fmt_ms(summary["threshold_ms"]))
    _element(properties, "property", name="summary", value=summary_line(report))
    for item in report["rounds"]:
        _junit_case(suite, item, bool(report.get("evacuation")))
    return _xml_document(suites)


def _junit_case(suite, item, evacuation):
    name = ("guest %s: %s" % (item["guest"], direction(item))) if evacuation else ("round %s: %s" % (item["round"], direction(item)))
    case = _element(suite, "testcase", classname="openeuler.kae.evacuation" if evacuation else "openeuler.kae.migration", name=name,
                    time=None if item["duration_s"] is None else "%.3f" % item["duration_s"])
    if item["status"] != "passed":
        tag = "error" if item["status"] == "error" else "failure"
        _element(case, tag, message=item["message"], type=item["status"]).text = _xml_text(item["message"])
    out = _element(case, "system-out")
    out.text = _xml_text("downtime_ms=%s libvirt_downtime_ms=%s network_downtime_ms=%s clock_offset_ms=%s profile=%s" % (
        fmt_ms(item["downtime_ms"]), fmt_ms(item["libvirt_downtime_ms"]), fmt_ms(item["network_downtime_ms"]),
        fmt_ms(item["clock_offset_ms"]), item["profile"] or "n/a"))


# ---------------------------------------------------------------- downtime.svg

SVG_NS = "http://www.w3.org/2000/svg"
COLOURS = {"passed": "#2e7d32", "failed": "#c62828", "error": "#9e9e9e", "threshold": "#d84315", "axis": "#333333", "grid": "#e0e0e0",
           "libvirt_downtime_ms": "#1565c0", "network_downtime_ms": "#6a1b9a"}
# Beside each round's trace bar: libvirt's figure and the network-observed one, thinner, in their own colours.
SIDE_FIGURES = (("libvirt_downtime_ms", "libvirt"), ("network_downtime_ms", "network"))
# Geometry in pixels: the plot area sits inside these margins; it widens with the number of rounds.
PLOT_LEFT, PLOT_TOP, PLOT_HEIGHT, PLOT_BOTTOM_MARGIN, PLOT_RIGHT_MARGIN = 70, 80, 260, 70, 110
PLOT_MIN_WIDTH, SLOT_MIN_WIDTH, BAR_MAX_WIDTH = 420, 28, 60


def nice_ticks(top):
    """Tick values from 0 to at least TOP, on a 1-2-5 step, about five of them."""
    raw = top / 5.0
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(magnitude * factor for factor in (1, 2, 5, 10) if magnitude * factor >= raw)
    count = int(math.ceil(top / step - 1e-9))
    return [step * index for index in range(count + 1)]


def render_svg(report):
    """downtime.svg: one bar per round, a dashed threshold line, axis labels, values and a legend."""
    rounds, threshold = report["rounds"], report["summary"]["threshold_ms"]
    measured = [item[key] for item in rounds for key in ("downtime_ms",) + tuple(k for k, _l in SIDE_FIGURES) if item[key] is not None]
    top = nice_ticks(max(measured + [threshold]) * 1.15)
    plot_width = max(PLOT_MIN_WIDTH, SLOT_MIN_WIDTH * len(rounds))
    slot = plot_width / float(len(rounds))
    width, height = PLOT_LEFT + plot_width + PLOT_RIGHT_MARGIN, PLOT_TOP + PLOT_HEIGHT + PLOT_BOTTOM_MARGIN
    svg = _element(None, "svg", xmlns=SVG_NS, width=str(width), height=str(height), viewBox="0 0 %d %d" % (width, height),
                   role="img", font_family="sans-serif", font_size="12")
    unit = "guest" if report.get("evacuation") else "round"
    _element(svg, "title").text = _xml_text("Downtime per %s, run %s: %s" % (unit, report["run_id"], summary_line(report)))
    _element(svg, "rect", x="0", y="0", width=str(width), height=str(height), fill="#ffffff")
    _text(svg, PLOT_LEFT, 22, "KAE live migration downtime per %s, run %s" % (unit, report["run_id"]), size="15")
    _text(svg, PLOT_LEFT, 42, summary_line(report), fill=COLOURS["passed" if report["summary"]["passed"] else "failed"])
    _legend(svg, PLOT_LEFT, 62)
    _axes(svg, top, plot_width)
    for position, item in enumerate(rounds):
        label = item["guest"] if unit == "guest" else item["round"]
        _bar(svg, PLOT_LEFT + slot * position, slot, item, top[-1], label)
        _side_bars(svg, PLOT_LEFT + slot * position, slot, item, top[-1], label if unit == "guest" else "Round %s" % label)
    _threshold_line(svg, threshold, top[-1], plot_width)
    middle = PLOT_TOP + PLOT_HEIGHT / 2.0
    _text(svg, 18, middle, "Downtime (ms)", anchor="middle", transform="rotate(-90 18 %s)" % _num(middle))
    _text(svg, PLOT_LEFT + plot_width / 2.0, height - 14, unit.capitalize(), anchor="middle")
    return _xml_document(svg)


def _num(value):
    return ("%.1f" % value).rstrip("0").rstrip(".")


def _y(value, top):
    return PLOT_TOP + PLOT_HEIGHT - PLOT_HEIGHT * value / top


def _text(parent, x, y, text, anchor="start", size=None, fill=None, transform=None):
    node = _element(parent, "text", x=_num(x), y=_num(y), text_anchor=anchor, font_size=size, fill=fill, transform=transform)
    node.text = _xml_text(text)
    return node


def _legend(svg, x, y):
    entries = (("passed", "passed"), ("failed", "failed"), ("error", "errored (no downtime)")) + SIDE_FIGURES
    for status, label in entries:
        _element(svg, "rect", x=_num(x), y=_num(y - 9), width="10", height="10", fill=COLOURS[status])
        x += 14 + 7 * len(_text(svg, x + 14, y, label).text) + 16


def _axes(svg, ticks, plot_width):
    right, bottom = _num(PLOT_LEFT + plot_width), _num(PLOT_TOP + PLOT_HEIGHT)
    for value in ticks:
        y = _y(value, ticks[-1])
        _element(svg, "line", x1=str(PLOT_LEFT), y1=_num(y), x2=right, y2=_num(y), stroke=COLOURS["grid"])
        _text(svg, PLOT_LEFT - 6, y + 4, fmt_ms(value) if value else "0", anchor="end")
    _element(svg, "line", x1=str(PLOT_LEFT), y1=str(PLOT_TOP), x2=str(PLOT_LEFT), y2=bottom, stroke=COLOURS["axis"])
    _element(svg, "line", x1=str(PLOT_LEFT), y1=bottom, x2=right, y2=bottom, stroke=COLOURS["axis"])


def _bar_geometry(left, slot):
    """(centre of the trace bar, width of each bar): the trace bar, then one thinner bar per side figure."""
    width = min(slot * 0.8, BAR_MAX_WIDTH * 1.5) / (len(SIDE_FIGURES) + 1.5)
    start = left + slot / 2.0 - width * (len(SIDE_FIGURES) + 1.5) / 2.0
    return start + width * 0.75, width


def _side_bars(svg, left, slot, item, top, label_text):
    """libvirt's and the network's figures of the round, right of its trace bar; nothing where a figure is unknown."""
    centre, width = _bar_geometry(left, slot)
    base = PLOT_TOP + PLOT_HEIGHT
    for index, (key, label) in enumerate(SIDE_FIGURES):
        if item[key] is None or item[key] < 0:
            continue
        y = _y(min(item[key], top), top)
        x = centre + width * 0.75 + width * index
        rect = _element(svg, "rect", x=_num(x), y=_num(y), width=_num(width * 0.9), height=_num(base - y), fill=COLOURS[key])
        _element(rect, "title").text = _xml_text("%s: %s %s ms" % (label_text, label, fmt_ms(item[key])))


def _bar(svg, left, slot, item, top, label_text):
    centre, bar_width = _bar_geometry(left, slot)
    bar_width *= 1.5
    base = PLOT_TOP + PLOT_HEIGHT
    group = _element(svg, "g")
    _element(group, "title").text = _xml_text("%s, %s: %s ms (%s)" % (
        label_text, direction(item), fmt_ms(item["downtime_ms"]), item["message"] or item["status"]))
    value = item["downtime_ms"]
    if value is None or value < 0:
        # No bar to draw: an outlined stub marks the round so it is not mistaken for a zero downtime.
        _element(group, "rect", x=_num(centre - bar_width / 2.0), y=_num(base - 14), width=_num(bar_width), height="14",
                 fill="none", stroke=COLOURS["error"], stroke_dasharray="3 2")
        label_y, label = base - 19, "error"
    else:
        y = _y(min(value, top), top)
        _element(group, "rect", x=_num(centre - bar_width / 2.0), y=_num(y), width=_num(bar_width),
                 height=_num(base - y), fill=COLOURS[item["status"]])
        label_y, label = y - 5, fmt_ms(value)
    size = "11" if slot >= 40 else "8"
    _text(group, centre, label_y, label, anchor="middle", size=size, fill=COLOURS[item["status"]])
    _text(group, centre, base + 18, label_text, anchor="middle", size=size)
    # The direction goes under the round number when it fits (about 6 px a character at 10 px).
    if slot >= 6 * len(direction(item)) + 8:
        _text(group, centre, base + 33, direction(item), anchor="middle", size="10", fill="#555555")


def _threshold_line(svg, threshold, top, plot_width):
    y = _y(threshold, top)
    right = PLOT_LEFT + plot_width
    _element(svg, "line", x1=str(PLOT_LEFT), y1=_num(y), x2=_num(right), y2=_num(y),
             stroke=COLOURS["threshold"], stroke_width="2", stroke_dasharray="6 4")
    _text(svg, right + 6, y - 3, "threshold", fill=COLOURS["threshold"])
    _text(svg, right + 6, y + 12, "%s ms" % fmt_ms(threshold), fill=COLOURS["threshold"])


# ---------------------------------------------------------------- timeline.svg (evacuation)

ROW_HEIGHT, TIMELINE_LEFT, TIMELINE_WIDTH = 24, 160, 560


def render_timeline(report):
    """timeline.svg: one bar per guest from the start to the end of its migration, on one time axis, so that the
    migrations that ran at once stand one above the other; the title says how many ran at once at most."""
    evacuation = report["evacuation"]
    rows = evacuation["guests"]
    timed = [row for row in rows if row["ended_at"] is not None]
    origin = min([row["started_at"] for row in timed] or [0.0])
    ticks = nice_ticks(max([row["ended_at"] - origin for row in timed] + [0.001]))
    span = ticks[-1]
    width = TIMELINE_LEFT + TIMELINE_WIDTH + 40
    height = PLOT_TOP + ROW_HEIGHT * len(rows) + 50
    svg = _element(None, "svg", xmlns=SVG_NS, width=str(width), height=str(height), viewBox="0 0 %d %d" % (width, height),
                   role="img", font_family="sans-serif", font_size="12")
    heading = "Migrations off %s over time, run %s: at most %d at once" % (evacuation["host"], report["run_id"], evacuation["max_concurrent"])
    _element(svg, "title").text = _xml_text(heading)
    _element(svg, "rect", x="0", y="0", width=str(width), height=str(height), fill="#ffffff")
    _text(svg, 10, 22, heading, size="15")
    _legend(svg, 10, 50)
    bottom = PLOT_TOP + ROW_HEIGHT * len(rows)
    for value in ticks:
        x = TIMELINE_LEFT + TIMELINE_WIDTH * value / span
        _element(svg, "line", x1=_num(x), y1=str(PLOT_TOP - 6), x2=_num(x), y2=_num(bottom), stroke=COLOURS["grid"])
        _text(svg, x, bottom + 16, "%g" % round(value, 3), anchor="middle")
    _text(svg, TIMELINE_LEFT + TIMELINE_WIDTH / 2.0, bottom + 36, "Seconds since the first migration started", anchor="middle")
    for position, row in enumerate(rows):
        top = PLOT_TOP + ROW_HEIGHT * position
        group = _element(svg, "g")
        _element(group, "title").text = _xml_text("%s, %s: %s s, downtime %s ms (%s)" % (
            row["guest"], direction(row), "n/a" if row["duration_s"] is None else "%.2f" % row["duration_s"],
            fmt_ms(row["downtime_ms"]), row["message"] or row["status"]))
        _text(group, TIMELINE_LEFT - 8, top + ROW_HEIGHT * 0.65, row["guest"], anchor="end")
        if row["ended_at"] is None:
            _text(group, TIMELINE_LEFT + 4, top + ROW_HEIGHT * 0.65, "not run (%s)" % row["status"], fill=COLOURS["error"])
            continue
        left = TIMELINE_LEFT + TIMELINE_WIDTH * (row["started_at"] - origin) / span
        _element(group, "rect", x=_num(left), y=_num(top + 4), width=_num(max(1.0, TIMELINE_WIDTH * row["duration_s"] / span)),
                 height=str(ROW_HEIGHT - 8), fill=COLOURS[row["status"]])
    return _xml_document(svg)


# ---------------------------------------------------------------- progress.svg

PANEL_WIDTH, PANEL_HEIGHT, PANEL_COLUMNS, PANEL_LEFT, PANEL_TOP = 340, 170, 2, 56, 46


def progress_points(item):
    """(seconds, MiB left) of a round's progress samples, those whose figures are numbers."""
    points = []
    for sample in item["progress"]:
        if isinstance(sample, dict):
            t_s, left = _number(sample.get("t_s")), _number(sample.get("remaining_mib"))
            if t_s is not None and left is not None:
                points.append((t_s, left))
    return points


def downtime_raises(item):
    """(seconds, new maximum downtime) where a sample shows a maximum downtime other than the one before."""
    raises, before = [], None
    for sample in item["progress"]:
        value = sample.get("max_downtime_ms") if isinstance(sample, dict) else None
        if before is not None and value is not None and value != before and _number(sample.get("t_s")) is not None:
            raises.append((_number(sample["t_s"]), value))
        before = value if value is not None else before
    return raises


def render_progress(report):
    """progress.svg: per migration a small chart of the memory left to send over time, with the downtime raises."""
    rounds = [item for item in report["rounds"] if item["progress"]]
    rows = (len(rounds) + PANEL_COLUMNS - 1) // PANEL_COLUMNS
    width, height = PANEL_WIDTH * PANEL_COLUMNS + 20, PANEL_TOP + rows * (PANEL_HEIGHT + 60)
    svg = _element(None, "svg", xmlns=SVG_NS, width=str(width), height=str(height), viewBox="0 0 %d %d" % (width, height),
                   role="img", font_family="sans-serif", font_size="11")
    heading = "Memory left to send over time, per migration, run %s" % report["run_id"]
    _element(svg, "title").text = _xml_text(heading)
    _element(svg, "rect", x="0", y="0", width=str(width), height=str(height), fill="#ffffff")
    _text(svg, 10, 22, heading, size="15")
    for position, item in enumerate(rounds):
        left = 10 + PANEL_WIDTH * (position % PANEL_COLUMNS)
        top = PANEL_TOP + (PANEL_HEIGHT + 60) * (position // PANEL_COLUMNS)
        _progress_panel(svg, left, top, item)
    return _xml_document(svg)


def _progress_panel(svg, left, top, item):
    group = _element(svg, "g")
    points = progress_points(item)
    title = "Round %s, %s: %s, max downtime %s" % (item["round"], direction(item), item["status"], step_cell(item))
    _element(group, "title").text = _xml_text(title)
    _text(group, left, top + 12, title)
    x0, y0 = left + PANEL_LEFT, top + 24
    plot_w, plot_h = PANEL_WIDTH - PANEL_LEFT - 20, PANEL_HEIGHT - 30
    x_ticks = nice_ticks(max([point[0] for point in points] + [0.001]))
    y_ticks = nice_ticks(max([point[1] for point in points] + [0.001]))

    def at(t_s, left_mib):
        return x0 + plot_w * t_s / x_ticks[-1], y0 + plot_h - plot_h * left_mib / y_ticks[-1]

    for value in y_ticks:
        y = at(0, value)[1]
        _element(group, "line", x1=_num(x0), y1=_num(y), x2=_num(x0 + plot_w), y2=_num(y), stroke=COLOURS["grid"])
        _text(group, x0 - 4, y + 4, "%g" % round(value, 3), anchor="end")
    for value in x_ticks:
        x = at(value, 0)[0]
        _text(group, x, y0 + plot_h + 14, "%g" % round(value, 3), anchor="middle")
    for t_s, value in downtime_raises(item):
        x = at(t_s, 0)[0]
        _element(group, "line", x1=_num(x), y1=_num(y0), x2=_num(x), y2=_num(y0 + plot_h), stroke=COLOURS["threshold"],
                 stroke_dasharray="4 3")
        _text(group, x + 3, y0 + 10, "%s ms" % fmt_ms(_number(value)), fill=COLOURS["threshold"])
    _element(group, "polyline", fill="none", stroke=COLOURS[item["status"]], stroke_width="2",
             points=" ".join("%s,%s" % tuple(_num(c) for c in at(t_s, value)) for t_s, value in points))
    _text(group, x0 + plot_w / 2.0, y0 + plot_h + 30, "Seconds since the migration started", anchor="middle")
    _text(group, left + 12, y0 + plot_h / 2.0, "MiB left", anchor="middle", transform="rotate(-90 %s %s)" % (
        _num(left + 12), _num(y0 + plot_h / 2.0)))


# ---------------------------------------------------------------- sweep.svg

def _median(values):
    values = sorted(values)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2.0


def sweep_rows(report):
    """Per maximum downtime the rounds ended at (the setting of a sweep): rounds, migrated, median and max downtime,
    median migration time; sorted by the setting."""
    groups = {}
    for item in report["rounds"]:
        setting = _number(item["max_downtime_final_ms"])
        if setting is not None:
            groups.setdefault(setting, []).append(item)
    rows = []
    for setting in sorted(groups):
        migrated = [item for item in groups[setting] if item["outcome"] == "migrated"]
        downtimes = [item["downtime_ms"] for item in migrated if item["downtime_ms"] is not None]
        durations = [item["duration_s"] for item in migrated if item["duration_s"] is not None]
        rows.append({"max_downtime_ms": setting, "rounds": len(groups[setting]), "migrated": len(migrated),
                     "median_downtime_ms": _median(downtimes), "max_downtime_measured_ms": max(downtimes) if downtimes else None,
                     "median_duration_s": _median(durations)})
    return rows


def render_sweep_table(report):
    rows = [(fmt_ms(row["max_downtime_ms"]), row["rounds"], row["migrated"], fmt_ms(row["median_downtime_ms"]),
             fmt_ms(row["max_downtime_measured_ms"]), "n/a" if row["median_duration_s"] is None else "%.2f" % row["median_duration_s"])
            for row in sweep_rows(report)]
    return _md_table(("Max downtime (ms)", "Rounds", "Migrated", "Median downtime (ms)", "Highest downtime (ms)",
                      "Median migration time (s)"), rows)


SWEEP_SERIES = (
    ("median_downtime_ms", "median downtime (ms)", "passed"),
    ("median_duration_s", "median migration time (s)", "libvirt_downtime_ms"),
)


def render_sweep(report):
    """sweep.svg: median measured downtime and median migration time against the maximum downtime setting, one
    point per setting evenly spaced, each series on its own scale (downtime left, migration time right)."""
    rows = sweep_rows(report)
    plot_width = max(PLOT_MIN_WIDTH, 90 * len(rows))
    width, height = PLOT_LEFT + plot_width + PLOT_RIGHT_MARGIN, PLOT_TOP + PLOT_HEIGHT + PLOT_BOTTOM_MARGIN
    svg = _element(None, "svg", xmlns=SVG_NS, width=str(width), height=str(height), viewBox="0 0 %d %d" % (width, height),
                   role="img", font_family="sans-serif", font_size="12")
    heading = "Tuning curve, run %s: downtime and migration time against the maximum downtime" % report["run_id"]
    _element(svg, "title").text = _xml_text(heading)
    _element(svg, "rect", x="0", y="0", width=str(width), height=str(height), fill="#ffffff")
    _text(svg, PLOT_LEFT, 22, heading, size="15")
    slot = plot_width / float(len(rows))
    bottom = PLOT_TOP + PLOT_HEIGHT
    _element(svg, "line", x1=str(PLOT_LEFT), y1=_num(bottom), x2=_num(PLOT_LEFT + plot_width), y2=_num(bottom), stroke=COLOURS["axis"])
    for position, row in enumerate(rows):
        _text(svg, PLOT_LEFT + slot * (position + 0.5), bottom + 18, fmt_ms(row["max_downtime_ms"]), anchor="middle")
    _text(svg, PLOT_LEFT + plot_width / 2.0, bottom + 40, "Maximum downtime setting (ms)", anchor="middle")
    for index, (key, label, colour) in enumerate(SWEEP_SERIES):
        values = [(position, row[key]) for position, row in enumerate(rows) if row[key] is not None]
        top = nice_ticks(max([pair[1] for pair in values] + [0.001]))[-1]
        _text(svg, PLOT_LEFT + 260 * index, 50, label, fill=COLOURS[colour])
        _text(svg, PLOT_LEFT - 6 if index == 0 else PLOT_LEFT + plot_width + 6, PLOT_TOP - 8, "%g" % round(top, 3),
              anchor="end" if index == 0 else "start", fill=COLOURS[colour])
        points = [(PLOT_LEFT + slot * (position + 0.5), _y(value, top)) for position, value in values]
        _element(svg, "polyline", fill="none", stroke=COLOURS[colour], stroke_width="2",
                 points=" ".join("%s,%s" % (_num(x), _num(y)) for x, y in points))
        for (x, y), pair in zip(points, values):
            dot = _element(svg, "circle", cx=_num(x), cy=_num(y), r="4", fill=COLOURS[colour])
            _element(dot, "title").text = _xml_text("%s: %s" % (label, fmt_ms(pair[1])))
    return _xml_document(svg)


# ---------------------------------------------------------------- all files

def render_json(report):
    return json.dumps(report, indent=2) + "\n"


def render_all(report):
    """Every report file's name and text (timeline.svg for an evacuation only, progress.svg when a round has progress samples,
    sweep.svg when the rounds ended at more than one maximum downtime)."""
    files = {
        "report.json": render_json(report),
        "report.md": render_markdown(report),
        "junit.xml": render_junit(report),
        "downtime.svg": render_svg(report),
    }
    if report.get("evacuation"):
        files["timeline.svg"] = render_timeline(report)
    if has_progress(report):
        files["progress.svg"] = render_progress(report)
    if len(sweep_rows(report)) > 1:
        files["sweep.svg"] = render_sweep(report)
    return files
