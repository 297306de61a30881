# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _record, _report

SVG = "{http://www.w3.org/2000/svg}"
GENERATED_AT = "2026-11-25T18:23:00Z"


def record(**fields):
    """A record of the migration contract with FIELDS set."""
    return dict(_record.empty_record(), **fields)


PASSED = record(round=1, guest="kae-guest", source="kae-lab-a", destination="kae-lab-b", downtime_ms=158.0, libvirt_downtime_ms=160.2,
                clock_offset_ms=0.25, clock_corrected=True, profile="upstream", started_at="2026-11-25T18:20:00Z", duration_s=1.25,
                paused_at=1795629893.037357, resumed_at=1795629893.195357, status="passed", error=None, outcome="migrated")
OVER = dict(PASSED, round=2, source="kae-lab-b", destination="kae-lab-a", downtime_ms=247.5, libvirt_downtime_ms=250.0)
ERRORED = record(round=3, guest="kae-guest", source="kae-lab-a", destination="kae-lab-b", status="error", outcome="unknown",
                 clock_offset_ms=0.25, clock_corrected=True,
                 error="cannot connect to qemu+ssh://kae-lab-b/system: <EOF> & more | detail\x01")
ENVIRONMENT = {"hosts": ["kae-lab-a", "kae-lab-b"], "qemu_version": "7.2.19", "libvirt_version": "9.0.0",
               "guest": {"name": "kae-guest", "vcpus": 2, "memory_mib": 256}, "lab": True,
               "devices": [{"bdf": "0000:31:00.1", "engine": "zip", "function": "vf", "vendor": "0x19e5", "device": "0xa251",
                            "numa_node": 0, "driver": "vfio-pci", "revision": "0x30", "domain": "kae-guest"}]}


def build(rounds, environment=None, threshold_ms=200):
    return _report.build_report(copy.deepcopy(rounds), environment if environment is not None else ENVIRONMENT,
                                threshold_ms, "20261125T182300Z", GENERATED_AT)


def table_rows(markdown_table):
    """The body rows of a markdown table as lists of cell texts."""
    lines = markdown_table.strip().splitlines()[2:]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


# ---------------------------------------------------------------- report data

def test_all_passed_summary_and_required_keys():
    report = build([PASSED, dict(PASSED, round=2, downtime_ms=147.0), dict(PASSED, round=3, downtime_ms=152.0)])
    assert set(report) >= {"run_id", "generated_at", "rounds", "summary", "environment"}
    summary = report["summary"]
    assert (summary["count"], summary["min_ms"], summary["median_ms"], summary["max_ms"]) == (3, 147.0, 152.0, 158.0)
    assert summary["threshold_ms"] == 200.0
    assert summary["passed"] is True
    for item in report["rounds"]:
        assert set(item) >= {"round", "source", "destination", "downtime_ms", "libvirt_downtime_ms", "clock_offset_ms",
                             "profile", "started_at", "duration_s", "status", "error"}
    assert _report.summary_line(report) == "max 158 ms <= 200 ms target: PASSED"


def test_round_over_threshold_fails_even_when_marked_passed():
    report = build([PASSED, OVER])
    assert [item["status"] for item in report["rounds"]] == ["passed", "failed"]
    assert report["rounds"][1]["message"] == "downtime 247.5 ms exceeds the 200 ms threshold"
    assert report["summary"]["passed"] is False
    assert report["summary"]["rounds_failed"] == 1
    assert _report.summary_line(report) == "max 247.5 ms > 200 ms target: FAILED"


def test_failed_round_under_threshold_keeps_its_error_and_fails_the_summary():
    failed = dict(PASSED, round=2, status="failed", error="guest runs on both hosts")
    report = build([PASSED, failed])
    assert report["rounds"][1]["status"] == "failed"
    assert report["rounds"][1]["message"] == "guest runs on both hosts"
    assert report["summary"]["max_ms"] == 158.0
    assert _report.summary_line(report) == "max 158 ms <= 200 ms target, 1 of 2 rounds failed or errored: FAILED"


def test_errored_round_is_left_out_of_the_statistics():
    report = build([PASSED, OVER, ERRORED])
    summary = report["summary"]
    assert (summary["count"], summary["measured"], summary["rounds_errored"]) == (3, 2, 1)
    assert (summary["min_ms"], summary["max_ms"]) == (158.0, 247.5)
    assert report["rounds"][2]["status"] == "error"
    assert report["rounds"][2]["message"].startswith("cannot connect to qemu+ssh://kae-lab-b/system")


def test_only_errored_rounds_give_a_summary_without_figures():
    report = build([ERRORED])
    summary = report["summary"]
    assert (summary["min_ms"], summary["median_ms"], summary["max_ms"], summary["passed"]) == (None, None, None, False)
    assert _report.summary_line(report) == "no round measured a downtime (1 of 1 rounds errored), 200 ms target: FAILED"


def test_passed_round_without_downtime_is_an_error():
    report = build([dict(PASSED, downtime_ms=None)])
    assert report["rounds"][0]["status"] == "error"
    assert report["rounds"][0]["message"] == "the round measured no downtime"


def test_negative_downtime_is_an_error_naming_the_clocks():
    report = build([PASSED, dict(PASSED, round=2, downtime_ms=-3.5)])
    assert report["rounds"][1]["status"] == "error"
    assert "clocks" in report["rounds"][1]["message"]
    assert report["summary"]["measured"] == 1


def test_a_record_without_round_number_gets_its_place_and_text_numbers_are_read():
    report = build([record(downtime_ms="12.5", status="passed")], environment={})
    item = report["rounds"][0]
    assert (item["round"], item["downtime_ms"], item["status"], item["source"]) == (1, 12.5, "passed", None)
    env = report["environment"]
    assert env["hosts"] == [] and env["devices"] == [] and env["lab"] is False
    assert env["guest"] == {"name": None, "vcpus": None, "memory_mib": None}


@pytest.mark.parametrize("rounds, expected", [
    ([], "rounds is empty"),
    ("round 1", "rounds must be a list"),
    ([PASSED, "oops"], "round 2 must be a migration record (a dict), got str"),
    ([{k: v for k, v in PASSED.items() if k != "clock_corrected"}], "round 1 is not a migration record (missing clock_corrected)"),
    ([dict(PASSED, job={})], "round 1 is not a migration record (unknown job)"),
    ([{"downtime_ms": 12.5}], "round 1 is not a migration record (missing round, guest, source"),
    ([dict(PASSED, downtime_ms="fast")], "round 1: downtime_ms must be a number or null, got 'fast'"),
    ([dict(PASSED, status="ok")], "round 1: status must be one of passed, failed, error, got 'ok'"),
])
def test_bad_rounds_raise_a_clear_error(rounds, expected):
    with pytest.raises(_report.ReportError, match=re.escape(expected)):
        build(rounds)


@pytest.mark.parametrize("run_id", ["", "latest", "../x", "a/b", ".hidden", None])
def test_bad_run_id_is_refused(run_id):
    with pytest.raises(_report.ReportError, match="cannot name a report directory"):
        _report.check_run_id(run_id)


@pytest.mark.parametrize("threshold", [0, -1, "x", None, float("nan")])
def test_bad_threshold_is_refused(threshold):
    with pytest.raises(_report.ReportError, match="threshold_ms must be a number of milliseconds above 0"):
        build([PASSED], threshold_ms=threshold)


def test_same_report_ignores_only_generated_at():
    report = build([PASSED])
    assert _report.same_report(dict(report, generated_at="2020-01-01T00:00:00Z"), report)
    assert not _report.same_report(build([OVER]), report)
    assert not _report.same_report(None, report)


@pytest.mark.parametrize("value, text", [(None, "n/a"), (158.0, "158"), (127.518, "127.5"), (0.001, "0.001"), (1234.56, "1234.6")])
def test_fmt_ms(value, text):
    assert _report.fmt_ms(value) == text


@pytest.mark.parametrize("value, text", [
    (1795629893.037357, "2026-11-25T18:04:53.037357Z"), ("1795629893.5", "2026-11-25T18:04:53.500000Z"),
    ("2026-11-25T18:20:00Z", "2026-11-25T18:20:00Z"), (None, "n/a"), (1e300, "1e+300"),
])
def test_fmt_time(value, text):
    assert _report.fmt_time(value) == text


@pytest.mark.parametrize("top, expected", [(230.0, [0, 50, 100, 150, 200, 250]), (9.0, [0, 2, 4, 6, 8, 10]), (0.00115, None)])
def test_nice_ticks_cover_the_top(top, expected):
    ticks = _report.nice_ticks(top)
    assert ticks[0] == 0 and ticks[-1] >= top
    assert 3 <= len(ticks) <= 11
    if expected:
        assert ticks == pytest.approx(expected)


# ---------------------------------------------------------------- report.md

def test_markdown_table_has_one_row_per_round():
    report = build([PASSED, OVER, ERRORED])
    rows = table_rows(_report.render_table(report))
    assert rows == [
        ["1", "158", "160.2", "not probed", "kae-lab-a -> kae-lab-b", "passed"],
        ["2", "247.5", "250", "not probed", "kae-lab-b -> kae-lab-a", "failed"],
        ["3", "n/a", "n/a", "not probed", "kae-lab-a -> kae-lab-b", "error"],
    ]


PROBED = dict(PASSED, network_downtime_ms=171.5, probes_sent=2400, probes_lost=160, probe_interval_ms=1.0,
              probe_jitter_ms=1.8, probe_from="controller")
PROBE_FAILED = dict(OVER, probe_from="controller", probes_sent=300, probe_error="probing 10.0.0.9: 0 of 300 probes were answered")
NOT_PROBED = dict(PASSED, round=3, probe_error=_record.NOT_PROBED)


def test_the_three_figures_side_by_side_and_what_the_probes_saw():
    report = build([PROBED, PROBE_FAILED, NOT_PROBED])
    assert [row[1:4] for row in table_rows(_report.render_table(report))] == [
        ["158", "160.2", "171.5"], ["247.5", "250", "probe failed"], ["158", "160.2", "not probed"]]
    text = _report.render_markdown(report)
    assert "## What the guest's clients saw" in text
    section = text.split("## What the guest's clients saw")[1].split("## Rounds in detail")[0]
    rows = table_rows(section[section.index("| Round"):])
    assert rows[0] == ["1", "171.5", "2400", "160", "1", "1.8", "controller", "n/a"]
    assert rows[1][1:3] == ["probe failed", "300"] and rows[1][7] == "probing 10.0.0.9: 0 of 300 probes were answered"
    assert rows[2][1] == "not probed" and rows[2][7] == "not measured: no probe address for this guest"
    assert "network_downtime_ms=171.5" in _report.render_junit(report)


def test_svg_draws_libvirt_and_network_beside_each_trace_bar():
    root = ET.fromstring(_report.render_svg(build([PROBED, NOT_PROBED])).encode("utf-8"))
    side = [rect for rect in root.findall(SVG + "rect") if rect.find(SVG + "title") is not None]
    assert [rect.find(SVG + "title").text for rect in side] == [
        "Round 1: libvirt 160.2 ms", "Round 1: network 171.5 ms", "Round 3: libvirt 160.2 ms"]
    trace = [group.find(SVG + "rect") for group in root.iter(SVG + "g")]
    # Side by side: each side bar starts right of its round's trace bar and is as tall as its figure says.
    first_trace_right = float(trace[0].get("x")) + float(trace[0].get("width"))
    assert all(float(rect.get("x")) >= first_trace_right for rect in side[:2])
    assert float(side[1].get("height")) > float(side[0].get("height")) > float(trace[0].get("height"))
    legend = [text.text for text in root.iter(SVG + "text")]
    assert "libvirt" in legend and "network" in legend


def test_markdown_report_holds_table_summary_and_environment():
    report = build([PASSED, OVER, ERRORED])
    text = _report.render_markdown(report)
    assert _report.render_table(report) in text
    assert "**max 247.5 ms > 200 ms target, 1 of 3 rounds failed or errored: FAILED**" in text
    assert "- Hosts: kae-lab-a, kae-lab-b" in text
    assert "- QEMU: 7.2.19; libvirt: 9.0.0" in text
    assert "- Guest: kae-guest, 2 vCPU, 256 MiB" in text
    assert "Devices (simulated in the lab)" in text
    assert "ZIP VF 0000:31:00.1 (0x19e5:0xa251, driver vfio-pci, NUMA node 0, rev 0x30, assigned to kae-guest)" in text
    assert "- Round 3 (error): cannot connect to qemu+ssh://kae-lab-b/system: \\<EOF> & more \\| detail" in text
    assert "2026-11-25T18:04:53.037357Z" in text
    assert "![Downtime per round against the threshold](downtime.svg)" in text


def test_markdown_outside_the_lab_does_not_say_simulated():
    text = _report.render_markdown(build([PASSED], environment=dict(ENVIRONMENT, lab=False)))
    assert "simulated" not in text
    assert "- Devices:\n  - ZIP VF 0000:31:00.1" in text


# ---------------------------------------------------------------- junit.xml

def test_junit_parses_with_one_case_per_round():
    report = build([PASSED, OVER, ERRORED])
    root = ET.fromstring(_report.render_junit(report).encode("utf-8"))
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == [
        "round 1: kae-lab-a -> kae-lab-b", "round 2: kae-lab-b -> kae-lab-a", "round 3: kae-lab-a -> kae-lab-b"]
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    assert cases[1].find("failure").get("message") == "downtime 247.5 ms exceeds the 200 ms threshold"
    error = cases[2].find("error").get("message")
    assert error == "cannot connect to qemu+ssh://kae-lab-b/system: <EOF> & more | detail"
    assert cases[0].get("time") == "1.250"
    properties = dict((prop.get("name"), prop.get("value")) for prop in suite.find("properties"))
    assert properties["threshold_ms"] == "200"


# ---------------------------------------------------------------- downtime.svg

def test_svg_parses_and_draws_bars_threshold_and_labels():
    report = build([PASSED, OVER, ERRORED])
    root = ET.fromstring(_report.render_svg(report).encode("utf-8"))
    assert root.tag == SVG + "svg"
    texts = [node.text for node in root.iter(SVG + "text")]
    assert "Downtime (ms)" in texts and "Round" in texts
    assert {"158", "247.5", "error", "200 ms", "kae-lab-b -> kae-lab-a"} <= set(texts)
    bars = [group.find(SVG + "rect") for group in root.iter(SVG + "g")]
    assert [rect.get("fill") for rect in bars] == ["#2e7d32", "#c62828", "none"]
    threshold = [line for line in root.iter(SVG + "line") if line.get("stroke-dasharray")]
    assert len(threshold) == 1
    # The over-threshold bar reaches above the line, the passing one stays below (SVG y grows downwards).
    line_y = float(threshold[0].get("y1"))
    assert float(bars[1].get("y")) < line_y < float(bars[0].get("y"))
    titles = [node.text for node in root.iter(SVG + "title")]
    assert any("<EOF> & more" in title for title in titles)


def test_svg_widens_for_many_rounds():
    few = ET.fromstring(_report.render_svg(build([PASSED])).encode("utf-8"))
    many = ET.fromstring(_report.render_svg(build([dict(PASSED, round=index) for index in range(1, 41)])).encode("utf-8"))
    assert int(many.get("width")) > int(few.get("width"))
    assert len(list(many.iter(SVG + "g"))) == 40
    # Too narrow a slot for the direction under each bar: it stays in the bar's tooltip.
    assert "kae-lab-a -> kae-lab-b" not in [node.text for node in many.iter(SVG + "text")]


def test_render_all_is_deterministic_and_json_round_trips():
    report = build([PASSED, OVER, ERRORED])
    files = _report.render_all(report)
    assert sorted(files) == sorted(_report.REPORT_FILES)
    assert files == _report.render_all(build([PASSED, OVER, ERRORED]))
    assert json.loads(files["report.json"]) == report


def test_records_built_by_the_contract_are_accepted_and_an_uncorrected_clock_is_said():
    steps = {"guest": "kae-guest", "source": "a", "destination": "b", "round": 1,
             "src_events": ["1@1795629893.000000:all_vcpus_paused"], "dst_events": ["2@1795629893.050000:all_vcpus_prepared"]}
    corrected = _record.build_record(dict(steps, clock_offset_ms=0.0))
    uncorrected = _record.build_record(dict(steps, round=2))
    report = build([corrected, uncorrected])
    assert report["summary"]["rounds_clock_uncorrected"] == 1 and report["summary"]["passed"] is True
    assert _report.summary_line(report).startswith("max 50 ms <= 200 ms target: PASSED (clocks not measured in 1 of 2 rounds")
    details = table_rows(_report.render_markdown(report).split("## Rounds in detail")[1].split("## Environment")[0])
    assert [row[2] for row in details] == ["0", "not measured (uncorrected)"]
    assert not _report.summary_line(build([corrected])).endswith(")")


# ---------------------------------------------------------------- evacuation

def guest_round(index, guest, start, duration, downtime, destination="kae-lab-b", status="passed", **fields):
    return record(round=index, guest=guest, source="kae-lab-a", destination=destination, started_at=start, duration_s=duration,
                  downtime_ms=downtime, libvirt_downtime_ms=None if downtime is None else downtime + 2, status=status,
                  outcome="migrated", clock_corrected=True, clock_offset_ms=0.0, profile="upstream", **fields)


# vm1 and vm2 overlap (batch 1), vm3 starts when vm1 ends (batch 2), vm4 errored before it measured anything.
EVAC_ROUNDS = [guest_round(1, "vm1", 1000.0, 2.0, 40.0, kae_vf_mapping={"0000:75:00.1": "0000:75:00.3"}),
               guest_round(2, "vm2", 1000.5, 2.5, 250.0, destination="kae-lab-c"),
               guest_round(3, "vm3", 1002.0, 1.0, 60.0),
               guest_round(4, "vm4", None, None, None, status="error", error="Migrate the guest: destination unreachable")]
EVACUATION = {"host": "kae-lab-a", "limits": {"per_source": 2, "per_destination": 2, "total": 5},
              "placements": [{"guest": "vm1", "batch": 1, "vfs": ["0000:75:00.2"]}, {"guest": "vm2", "batch": 1, "vfs": ["0000:b5:00.1"]},
                             {"guest": "vm3", "batch": 2, "vfs": []}, {"guest": "vm4", "batch": 2, "vfs": []}],
              "moving": {"vm1": {"vfs": ["0000:75:00.1"]}, "vm2": {"vfs": ["0000:75:00.2"]}, "vm3": {"vfs": []}, "vm4": {"vfs": []}},
              "skipped": [{"guest": "vm9", "source": "kae-lab-a", "reasons": [{"reason": "not enough free memory", "hosts": ["kae-lab-b"]}]}]}


def evacuation_report(rounds=None):
    return _report.build_report(copy.deepcopy(rounds or EVAC_ROUNDS), {"hosts": ["kae-lab-a", "kae-lab-b"], "lab": True}, 200,
                                "evac1", GENERATED_AT, copy.deepcopy(EVACUATION))


def test_evacuation_rows_join_records_and_plan():
    report = evacuation_report()
    rows = dict((row["guest"], row) for row in report["evacuation"]["guests"])
    # The VFs the migration's remap gave win over the plan's; without a remap the plan's are shown.
    assert rows["vm1"]["vfs_before"] == ["0000:75:00.1"] and rows["vm1"]["vfs_after"] == ["0000:75:00.3"]
    assert rows["vm2"]["vfs_after"] == ["0000:b5:00.1"] and rows["vm2"]["destination"] == "kae-lab-c"
    assert rows["vm1"]["ended_at"] == 1002.0 and rows["vm4"]["ended_at"] is None
    assert [rows[name]["status"] for name in ("vm1", "vm2", "vm3", "vm4")] == ["passed", "failed", "passed", "error"]
    assert report["evacuation"]["skipped"] == [{"guest": "vm9", "reasons": ["not enough free memory"]}]


def test_max_concurrent_counts_overlaps_not_back_to_back_migrations():
    assert evacuation_report()["evacuation"]["max_concurrent"] == 2
    assert evacuation_report()["summary"]["max_concurrent"] == 2
    # Three at once when vm3 starts before vm1 ends.
    rounds = copy.deepcopy(EVAC_ROUNDS)
    rounds[2]["started_at"] = 1001.0
    assert evacuation_report(rounds)["evacuation"]["max_concurrent"] == 3


def test_evacuation_markdown_has_a_row_per_guest_the_statistics_and_the_skipped():
    text = _report.render_markdown(evacuation_report())
    assert text.startswith("# KAE host evacuation report evac1")
    rows = table_rows(text.split("## Guests")[1].split("**")[0])
    assert [row[0] for row in rows] == ["vm1", "vm2", "vm3", "vm4"]
    assert rows[0][1:6] == ["kae-lab-a", "kae-lab-b", "0000:75:00.1", "0000:75:00.3", "40"]
    assert rows[1][10] == "failed" and rows[3][5] == "n/a" and rows[0][7] == "not probed"
    assert "## What the guest's clients saw" in text and "| vm1 | not probed |" in text
    assert "min 40 ms, median 60 ms, mean 116.7 ms, p95 250 ms, max 250 ms" in text
    assert "- vm9: not enough free memory" in text and "2 ran at once at most" in text
    assert "(timeline.svg)" in text and "(downtime.svg)" in text


def test_evacuation_junit_has_a_test_case_per_guest():
    root = ET.fromstring(_report.render_junit(evacuation_report()).encode("utf-8"))
    cases = list(root.iter("testcase"))
    assert [case.get("name") for case in cases] == ["guest vm1: kae-lab-a -> kae-lab-b", "guest vm2: kae-lab-a -> kae-lab-c",
                                                    "guest vm3: kae-lab-a -> kae-lab-b", "guest vm4: kae-lab-a -> kae-lab-b"]
    assert cases[1].find("failure") is not None and cases[3].find("error") is not None and cases[0].find("failure") is None


def test_downtime_chart_labels_bars_by_guest():
    root = ET.fromstring(_report.render_svg(evacuation_report()).encode("utf-8"))
    texts = [node.text for node in root.iter(SVG + "text")]
    assert {"vm1", "vm2", "vm3", "vm4", "Guest"} <= set(texts)


def test_timeline_draws_each_migration_from_start_to_end():
    root = ET.fromstring(_report.render_timeline(evacuation_report()).encode("utf-8"))
    assert "at most 2 at once" in root.find(SVG + "title").text
    bars = [rect for group in root.iter(SVG + "g") for rect in group.iter(SVG + "rect")]
    assert len(bars) == 3  # vm4 never ran: a note instead of a bar
    lefts, widths = [float(rect.get("x")) for rect in bars], [float(rect.get("width")) for rect in bars]
    # vm1 starts at the origin; vm2 half a second later; vm3 where vm1 ends; lengths in proportion to the durations.
    assert lefts[0] == _report.TIMELINE_LEFT and lefts[0] < lefts[1] < lefts[2]
    assert lefts[2] == pytest.approx(lefts[0] + widths[0], abs=0.1)
    assert widths[1] / widths[0] == pytest.approx(2.5 / 2.0, rel=0.01)
    assert any("not run (error)" in (node.text or "") for node in root.iter(SVG + "text"))


def test_evacuation_files_add_the_timeline_and_migration_rounds_do_not():
    assert sorted(_report.render_all(evacuation_report())) == sorted(_report.REPORT_FILES + ("timeline.svg",))
    assert "timeline.svg" not in _report.render_all(build([PASSED]))


@pytest.mark.parametrize("evacuation, message", [
    ("kae-lab-a", "evacuation must be a mapping"),
    ({"placements": [{"batch": 1}]}, "evacuation.placements must be the plan's placements"),
    ({"moving": ["vm1"]}, "evacuation.moving must be"),
    ({"skipped": "vm9"}, "evacuation.skipped must be a list"),
])
def test_bad_evacuation_input_is_named(evacuation, message):
    with pytest.raises(_report.ReportError, match=message):
        _report.build_report(copy.deepcopy(EVAC_ROUNDS), {}, 200, "evac1", GENERATED_AT, evacuation)


# ---------------------------------------------------------------- convergence

def samples(*points):
    """Progress samples from (seconds, MiB left, maximum downtime) triples."""
    return [{"t_s": t_s, "remaining_mib": left, "iteration": index, "max_downtime_ms": limit}
            for index, (t_s, left, limit) in enumerate(points, start=1)]


STEPPED = dict(PASSED, progress=samples((2.0, 180.0, 100), (4.0, 40.0, 100), (6.0, 35.0, 400), (8.0, 2.0, 400)),
               max_downtime_final_ms=400, downtime_step=1)
ABORTED = dict(ERRORED, round=2, progress=samples((2.0, 190.0, 100), (4.0, 31.0, 100), (6.0, 33.0, 100)),
               max_downtime_final_ms=100, downtime_step=0, limit={"name": "progress_timeout_s", "value_s": 20.0, "at_s": 24.1})


def test_the_convergence_table_says_the_step_the_limit_and_the_pause():
    paused = dict(STEPPED, round=3, suspended={"at_s": 31.0, "limit": "progress_timeout_s", "resumed_by": "libvirt", "paused_s": 1.5})
    report = build([STEPPED, ABORTED, paused])
    markdown = _report.render_markdown(report)
    assert "## Convergence" in markdown and "![Memory left to send over time, per migration](progress.svg)" in markdown
    rows = table_rows(_report.render_convergence(report))
    assert rows[0] == ["1", "4", "4", "400 (step 1)", "none", "no"]
    assert rows[1] == ["2", "3", "3", "100 (step 0)", "progress_timeout_s 20.0 s (at 24.1 s)", "no"]
    assert rows[2][-1] == "1.5 s from 31.0 s (progress_timeout_s)"


def test_without_progress_samples_there_is_no_convergence_section_and_no_chart():
    report = build([PASSED])
    assert "## Convergence" not in _report.render_markdown(report)
    assert sorted(_report.render_all(report)) == sorted(_report.REPORT_FILES)


def test_the_progress_chart_draws_one_line_per_migration_with_the_raises():
    report = build([STEPPED, ABORTED, dict(PASSED, round=3)])
    files = _report.render_all(report)
    # They ended at two maximum downtimes, so the tuning curve is drawn too.
    assert sorted(files) == sorted(_report.REPORT_FILES + ("progress.svg", "sweep.svg"))
    root = ET.fromstring(files["progress.svg"].split("\n", 1)[1])
    lines = root.findall(".//%spolyline" % SVG)
    assert len(lines) == 2
    first = [tuple(map(float, point.split(","))) for point in lines[0].get("points").split()]
    assert len(first) == 4
    # Time runs right, memory left runs down the page as it shrinks.
    assert [point[0] for point in first] == sorted(point[0] for point in first)
    assert first[0][1] < first[1][1] < first[3][1]
    texts = [node.text for node in root.iter("%stext" % SVG)]
    assert "400 ms" in texts and "100 ms" not in texts
    assert any(text.startswith("Round 2, kae-lab-a -> kae-lab-b: error") for text in texts)


def test_progress_samples_with_odd_figures_are_left_out_of_the_chart():
    odd = dict(STEPPED, progress=[{"t_s": "x", "remaining_mib": 1.0}, {"t_s": 1.0, "remaining_mib": None}, "junk",
                                  {"t_s": 2.0, "remaining_mib": 5.0, "max_downtime_ms": 100}])
    report = build([odd])
    assert _report.progress_points(report["rounds"][0]) == [(2.0, 5.0)]
    root = ET.fromstring(_report.render_progress(report).split("\n", 1)[1])
    assert root.find(".//%spolyline" % SVG).get("points").count(",") == 1


def swept(round_, setting, downtime_ms, duration_s, outcome="migrated"):
    return dict(PASSED, round=round_, max_downtime_final_ms=setting, downtime_step=0, downtime_ms=downtime_ms, duration_s=duration_s,
                outcome=outcome, status="passed" if outcome == "migrated" else "error", error=None if outcome == "migrated" else "aborted")


def test_a_sweep_gives_the_tuning_curve_per_setting():
    rounds = [swept(1, 50, 40.0, 1.5), swept(2, 50, 44.0, 1.7), swept(3, 200, 120.0, 1.1), swept(4, 200, None, 9.0, "aborted"),
              swept(5, 100, 80.0, 1.2)]
    report = build(rounds, threshold_ms=500)
    rows = _report.sweep_rows(report)
    assert [row["max_downtime_ms"] for row in rows] == [50.0, 100.0, 200.0]
    assert (rows[0]["rounds"], rows[0]["migrated"], rows[0]["median_downtime_ms"], rows[0]["median_duration_s"]) == (2, 2, 42.0, 1.6)
    # An aborted round counts as run, not in the medians.
    assert (rows[2]["rounds"], rows[2]["migrated"], rows[2]["median_downtime_ms"], rows[2]["median_duration_s"]) == (2, 1, 120.0, 1.1)
    markdown = _report.render_markdown(report)
    assert "## Tuning curve" in markdown and "![Downtime and migration time against the maximum downtime](sweep.svg)" in markdown
    assert table_rows(_report.render_sweep_table(report))[1] == ["100", "1", "1", "80", "80", "1.20"]
    root = ET.fromstring(_report.render_all(report)["sweep.svg"].split("\n", 1)[1])
    lines = root.findall(".//%spolyline" % SVG)
    assert len(lines) == 2 and all(len(line.get("points").split()) == 3 for line in lines)
    downtime = [float(point.split(",")[1]) for point in lines[0].get("points").split()]
    # Higher downtime is drawn higher up the page.
    assert downtime[0] > downtime[1] > downtime[2]


def test_one_setting_draws_no_curve():
    report = build([swept(1, 100, 80.0, 1.2), swept(2, 100, 70.0, 1.0)])
    assert "sweep.svg" not in _report.render_all(report) and "## Tuning curve" not in _report.render_markdown(report)
