# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The openeuler.kae.report role run by ansible-playbook: files, last output, play failure."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils._record import empty_record


def record(**fields):
    """A migration record (the report accepts only the contract's keys)."""
    return dict(empty_record(), guest="kae-guest", clock_offset_ms=0.0, clock_corrected=True, profile="upstream", **fields)


ROUNDS = [
    record(round=1, source="kae-lab-a", destination="kae-lab-b", downtime_ms=21.4, libvirt_downtime_ms=23.0, duration_s=1.1,
           status="passed", outcome="migrated"),
    record(round=2, source="kae-lab-b", destination="kae-lab-a", downtime_ms=35.0, libvirt_downtime_ms=37.5, duration_s=1.2,
           status="passed", outcome="migrated"),
    record(round=3, source="kae-lab-a", destination="kae-lab-b", downtime_ms=28.0, libvirt_downtime_ms=30.0, duration_s=1.0,
           status="passed", outcome="migrated"),
]
PLAY = """
- name: Report rounds
  hosts: kae_hypervisors
  gather_facts: false
  roles:
    - role: openeuler.kae.report
      report_rounds: "{{ lookup('ansible.builtin.file', playbook_dir ~ '/rounds.json') | from_json }}"
      report_environment: {hosts: [kae-lab-a, kae-lab-b], guest: {name: kae-guest, vcpus: 1, memory_mib: 256}, lab: true}
"""


@pytest.fixture
def report_play(tmp_path):
    """Write a playbook under TMP/playbooks reporting ROUNDS; return (playbook, reports dir)."""
    def write(rounds):
        playbooks = tmp_path / "playbooks"
        playbooks.mkdir(exist_ok=True)
        (playbooks / "rounds.json").write_text(json.dumps(rounds))
        (playbooks / "report.yml").write_text(PLAY)
        return str(playbooks / "report.yml"), tmp_path / "reports"
    return write


def test_report_written_beside_the_playbook_and_table_is_the_last_output(report_play, ansible_playbook):
    playbook, reports = report_play(ROUNDS)
    result = ansible_playbook(playbook)
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = os.readlink(str(reports / "latest"))
    assert re.match(r"^\d{8}T\d{6}Z$", run_id), run_id
    data = json.loads((reports / run_id / "report.json").read_text())
    assert len(data["rounds"]) == 3 and data["summary"]["passed"] is True
    ET.parse(str(reports / run_id / "junit.xml"))
    ET.parse(str(reports / run_id / "downtime.svg"))
    last_task = result.stdout.split("TASK [")[-1]
    assert "Report: %s" % (reports / run_id / "report.md") in last_task
    assert "| 2 | 35 | 37.5 | not probed | kae-lab-b -> kae-lab-a | passed |" in last_task
    assert "max 35 ms <= 200 ms target: PASSED" in last_task


def test_threshold_exceeded_fails_the_play_after_writing_the_report(report_play, ansible_playbook):
    playbook, reports = report_play(ROUNDS)
    result = ansible_playbook(playbook, "-e", "report_threshold_ms=0.001", "-e", "report_run_id=tight")
    assert result.returncode != 0
    assert "max 35 ms > 0.001 ms target: FAILED" in result.stdout
    data = json.loads((reports / "tight" / "report.json").read_text())
    assert data["summary"]["passed"] is False
    assert [item["status"] for item in data["rounds"]] == ["failed"] * 3
    failures = ET.parse(str(reports / "tight" / "junit.xml")).getroot().findall(".//failure")
    assert len(failures) == 3


def test_errored_round_fails_the_play(report_play, ansible_playbook):
    errored = record(round=4, source="kae-lab-b", destination="kae-lab-a", status="error", outcome="aborted",
                     error="migration timed out after 60 s")
    playbook, reports = report_play(ROUNDS + [errored])
    # A relative report_dir is taken from the playbook directory.
    result = ansible_playbook(playbook, "-e", "report_run_id=errored", "-e", "report_dir=../other-reports")
    assert result.returncode != 0
    assert "| 4 | n/a | n/a | not probed | kae-lab-b -> kae-lab-a | error |" in result.stdout
    assert "1 of 4 rounds failed or errored: FAILED" in result.stdout
    assert "migration timed out after 60 s" in (reports.parent / "other-reports" / "errored" / "report.md").read_text()


def test_no_rounds_fails_clearly_and_writes_nothing(report_play, ansible_playbook):
    playbook, reports = report_play([])
    result = ansible_playbook(playbook)
    assert result.returncode != 0
    assert "rounds is empty" in result.stdout
    assert not reports.exists()
