# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils._record import empty_record
from ansible_collections.openeuler.kae.plugins.modules import migration_report

ROUNDS = [
    dict(empty_record(), round=1, guest="kae-guest", source="kae-lab-a", destination="kae-lab-b", downtime_ms=21.4,
         libvirt_downtime_ms=23.0, clock_offset_ms=0.0, clock_corrected=True, profile="upstream", started_at="2026-11-25T18:20:00Z",
         duration_s=1.1, status="passed", outcome="migrated"),
    dict(empty_record(), round=2, guest="kae-guest", source="kae-lab-b", destination="kae-lab-a", downtime_ms=35.0,
         libvirt_downtime_ms=37.5, clock_offset_ms=0.0, clock_corrected=True, profile="upstream", started_at="2026-11-25T18:20:05Z",
         duration_s=1.2, status="passed", outcome="migrated"),
]
ENVIRONMENT = {"hosts": ["kae-lab-a", "kae-lab-b"], "guest": {"name": "kae-guest", "vcpus": 1, "memory_mib": 256}, "lab": True}
FILES = ("report.json", "report.md", "junit.xml", "downtime.svg")


def args(report_dir, **overrides):
    return dict({"rounds": ROUNDS, "environment": ENVIRONMENT, "report_dir": str(report_dir), "run_id": "run1"}, **overrides)


def snapshot(path):
    """Every file and link below PATH with its content or target."""
    found = {}
    for parent, dirs, files in os.walk(str(path)):
        for name in dirs + files:
            full = os.path.join(parent, name)
            if os.path.islink(full):
                found[full] = "-> " + os.readlink(full)
            elif os.path.isfile(full):
                with open(full, encoding="utf-8") as handle:
                    found[full] = handle.read()
    return found


def test_writes_every_file_and_latest(tmp_path, run_module):
    result = run_module(migration_report, args(tmp_path / "reports"))
    assert result["changed"] is True
    run_dir = tmp_path / "reports" / "run1"
    assert result["run_dir"] == str(run_dir)
    for name in FILES:
        assert (run_dir / name).is_file(), name
    assert result["files"]["svg"] == str(run_dir / "downtime.svg")
    assert os.readlink(str(tmp_path / "reports" / "latest")) == "run1"
    data = json.loads((run_dir / "report.json").read_text())
    assert [item["downtime_ms"] for item in data["rounds"]] == [21.4, 35.0]
    assert data["summary"]["max_ms"] == 35.0 and data["summary"]["passed"] is True
    ET.parse(str(run_dir / "junit.xml"))
    ET.parse(str(run_dir / "downtime.svg"))
    assert result["table"] in (run_dir / "report.md").read_text()
    assert result["summary_line"] == "max 35 ms <= 200 ms target: PASSED"
    assert not [name for name in os.listdir(str(run_dir)) if name.startswith(".")], "temporary files left behind"


def test_second_run_with_same_rounds_changes_nothing(tmp_path, monkeypatch, run_module):
    monkeypatch.setattr(migration_report, "utc_now", lambda: "2026-11-25T18:00:00Z")
    run_module(migration_report, args(tmp_path))
    before = snapshot(tmp_path)
    # Later, the same run id and rounds: the report keeps the time it was first generated.
    monkeypatch.setattr(migration_report, "utc_now", lambda: "2026-11-25T19:00:00Z")
    result = run_module(migration_report, args(tmp_path))
    assert result["changed"] is False
    assert result["changed_files"] == []
    assert snapshot(tmp_path) == before
    assert json.loads((tmp_path / "run1" / "report.json").read_text())["generated_at"] == "2026-11-25T18:00:00Z"


def test_changed_rounds_rewrite_the_report(tmp_path, run_module):
    run_module(migration_report, args(tmp_path))
    result = run_module(migration_report, args(tmp_path, rounds=[dict(ROUNDS[0], downtime_ms=250.0)]))
    assert result["changed"] is True
    assert set(result["changed_files"]) == set(FILES)
    assert result["summary"]["passed"] is False
    assert json.loads((tmp_path / "run1" / "report.json").read_text())["rounds"][0]["status"] == "failed"


def test_check_mode_predicts_and_writes_nothing(tmp_path, run_module):
    result = run_module(migration_report, args(tmp_path / "reports"), check_mode=True)
    assert result["changed"] is True
    assert result["changed_files"] == list(FILES) + ["latest"]
    assert not (tmp_path / "reports").exists()


def test_check_mode_after_a_run_predicts_no_change(tmp_path, run_module):
    run_module(migration_report, args(tmp_path))
    assert run_module(migration_report, args(tmp_path), check_mode=True)["changed"] is False


def test_new_run_moves_latest_and_keeps_the_old_run(tmp_path, run_module):
    run_module(migration_report, args(tmp_path))
    result = run_module(migration_report, args(tmp_path, run_id="run2"), diff=True)
    assert result["changed_files"] == list(FILES) + ["latest"]
    assert os.readlink(str(tmp_path / "latest")) == "run2"
    assert (tmp_path / "run1" / "report.json").is_file()
    link_diff = result["diff"][-1]
    assert link_diff["before"].endswith("latest -> run1\n") and link_diff["after"].endswith("latest -> run2\n")


def test_latest_false_leaves_no_link(tmp_path, run_module):
    result = run_module(migration_report, args(tmp_path, latest=False))
    assert result["latest"] is None
    assert not os.path.lexists(str(tmp_path / "latest"))


def test_diff_shows_the_markdown_change(tmp_path, run_module):
    result = run_module(migration_report, args(tmp_path), diff=True)
    markdown = [item for item in result["diff"] if item["after_header"].endswith("report.md")]
    assert markdown[0]["before"] == "" and "| 1 | 21.4 | 23 | not probed | kae-lab-a -> kae-lab-b | passed |" in markdown[0]["after"]


@pytest.mark.parametrize("overrides, message", [
    ({"rounds": []}, "rounds is empty"),
    ({"run_id": "../escape"}, "cannot name a report directory"),
    ({"threshold_ms": 0}, "threshold_ms must be a number of milliseconds above 0"),
    ({"rounds": [dict(ROUNDS[0], downtime_ms="fast")]}, "downtime_ms must be a number or null"),
    ({"rounds": [dict(ROUNDS[0], downtime_ms=10 ** 400)]}, "round 1: downtime_ms must be a number or null"),
    ({"rounds": [dict(ROUNDS[0], downtime_ms="1e99999999")]}, "round 1: downtime_ms must be a number or null"),
    ({"rounds": [dict(ROUNDS[0], downtime_ms="\u0661\u0662")]}, "round 1: downtime_ms must be a number or null"),
    ({"rounds": [dict(ROUNDS[0], downtime_ms="nan")]}, "round 1: downtime_ms must be a number or null"),
    ({"rounds": [dict(ROUNDS[0], downtime_ms=12, paused_at=-10 ** 400)]}, "round 1: paused_at must be a number or null"),
    ({"rounds": [dict(ROUNDS[0], downtime_ms=12, status=["passed"])]}, "round 1: status must be one of passed, failed, error"),
    ({"rounds": [dict(ROUNDS[0], downtime=3)]}, "round 1 is not a migration record (unknown downtime)"),
    ({"rounds": [{k: v for k, v in ROUNDS[0].items() if k != "kae_vf_mapping"}]}, "round 1 is not a migration record (missing kae_vf_mapping)"),
    ({"rounds": [5]}, "Elements value for option 'rounds' is of type int and we were unable to convert to dict"),
    ({"run_id": "run1\n"}, "cannot name a report directory"),
    ({"run_id": "run\x00"}, "cannot name a report directory"),
    ({"run_id": "latest"}, "cannot name a report directory"),
    ({"threshold_ms": "nan"}, "threshold_ms must be a finite number written with the digits 0-9 (such as 2.5 or 1e3), got 'nan'"),
    ({"threshold_ms": "inf"}, "threshold_ms must be a finite number written with the digits 0-9"),
    ({"threshold_ms": "1e999"}, "threshold_ms must be a number of milliseconds above 0, got inf"),
    ({"threshold_ms": 10 ** 400}, "threshold_ms must be a finite number, got a whole number of 401 digits that no float holds"),
    ({"threshold_ms": "\u0662\u0660\u0660"}, "threshold_ms must be a finite number written with the digits 0-9"),
])
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, fail_module, overrides, message):
    result = fail_module(migration_report, args(tmp_path / "reports", **overrides))
    assert result["msg"].startswith(("cannot write the migration report: ", "Elements value for option 'rounds'"))
    assert message in result["msg"]
    assert not (tmp_path / "reports").exists()


def test_a_nul_byte_in_report_dir_is_named(tmp_path, fail_module):
    result = fail_module(migration_report, dict(args(tmp_path), report_dir=str(tmp_path) + "/reports\x00"))
    assert result["msg"] == "cannot write the migration report: report_dir must not contain a NUL byte, got '%s/reports\\x00'" % tmp_path
    assert os.listdir(str(tmp_path)) == []


def test_latest_that_is_not_a_link_is_refused(tmp_path, fail_module):
    (tmp_path / "latest").mkdir()
    result = fail_module(migration_report, args(tmp_path))
    assert "is not a symlink" in result["msg"]
    assert not (tmp_path / "run1").exists()


def test_unwritable_report_dir_fails_with_the_path(tmp_path, fail_module):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = fail_module(migration_report, args(blocker))
    assert str(blocker) in result["msg"]


def test_evacuation_writes_the_timeline_and_a_row_per_guest(tmp_path, run_module):
    rounds = [dict(ROUNDS[0], guest="vm1", started_at=1000.0),
              dict(ROUNDS[1], guest="vm2", source="kae-lab-a", destination="kae-lab-b", started_at=1000.2)]
    evacuation = {"host": "kae-lab-a", "placements": [{"guest": "vm1", "batch": 1, "vfs": []}, {"guest": "vm2", "batch": 1, "vfs": []}],
                  "moving": {"vm1": {"vfs": []}, "vm2": {"vfs": []}}, "skipped": [], "limits": {"per_source": 2}}
    result = run_module(migration_report, args(tmp_path, rounds=rounds, evacuation=evacuation))
    assert result["files"]["timeline"] == str(tmp_path / "run1" / "timeline.svg")
    assert "timeline.svg" in result["changed_files"] and result["summary"]["max_concurrent"] == 2
    ET.parse(str(tmp_path / "run1" / "timeline.svg"))
    assert result["table"].startswith("| Guest | From | To |")
    assert run_module(migration_report, args(tmp_path, rounds=rounds, evacuation=evacuation))["changed"] is False


def test_rounds_without_evacuation_have_no_timeline(tmp_path, run_module):
    result = run_module(migration_report, args(tmp_path))
    assert "timeline" not in result["files"] and not (tmp_path / "run1" / "timeline.svg").exists()
