# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the lab guest's clients saw: rounds of playbooks/kae_migrate.yml with ICMP probes from the controller.

The lab inventory gives kae-guest's address on the lab network (kae_guest_address), so the playbook probes it by
default; a guest whose address answers nothing is migrated and measured all the same, and the report says why it has
no network figure.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _report
from conftest import KAELAB, run_ansible_playbook

PLAYBOOK = "playbooks/kae_migrate.yml"
ROUNDS = 3
# An address on the lab network that no lab guest or host holds: its probes are never answered.
SILENT_ADDRESS = "10.77.231.99"
TABLE_HEADER = "| Round | Downtime (ms) | libvirt downtime (ms) | Network downtime (ms) | Direction | Result |"


def guest_address():
    return KAELAB._guestnet().GUEST_ADDR  # pylint: disable=protected-access


def answers(address):
    """Whether ADDRESS answers one ICMP echo from the controller within a second."""
    return subprocess.run(["ping", "-c", "1", "-W", "1", address], capture_output=True, check=False).returncode == 0


def played(report_dir, *extra):
    """A run of the playbook (host phase skipped) and its report (report.json, report.md, the chart's titles)."""
    done = run_ansible_playbook(PLAYBOOK, "--skip-tags", "host", "-e", "report_dir=%s" % report_dir, *extra)
    assert done.returncode == 0, done.stdout[-4000:]
    latest = report_dir / "latest"
    svg = ET.parse(str(latest / "downtime.svg")).getroot()
    titles = [node.text or "" for node in svg.iter("{http://www.w3.org/2000/svg}title")]
    return json.loads((latest / "report.json").read_text()), (latest / "report.md").read_text(), titles


@pytest.fixture(scope="module")
def probed(lab, tmp_path_factory):  # pylint: disable=unused-argument
    return played(tmp_path_factory.mktemp("probed"), "-e", "migration_rounds=%d" % ROUNDS)


def test_the_lab_guest_answers_from_whichever_host_runs_it(probed):
    # The fixture's rounds moved the guest back and forth; it still answers from the host it ended on.
    report, _text, _titles = probed
    assert report["rounds"][-1]["outcome"] == "migrated"
    assert answers(guest_address())


def test_every_round_has_a_network_figure_no_smaller_than_the_trace(probed, figures):
    report, _text, _titles = probed
    rounds = report["rounds"]
    assert len(rounds) == ROUNDS
    for item in rounds:
        assert item["outcome"] == "migrated" and item["probe_error"] is None, item
        assert item["probe_from"] == "localhost" and item["probe_interval_ms"] == 1.0, item
        assert item["probes_sent"] > item["probes_lost"] >= 0, item
        assert item["network_downtime_ms"] > 0, item
        # The guest's clients cannot see it answer before QEMU runs it again: the gap covers the trace downtime,
        # within one probe interval of resolution.
        assert item["network_downtime_ms"] >= item["downtime_ms"] - item["probe_interval_ms"], item
    figures.append(("network downtime per round, lab (ms)", ", ".join("%.2f" % r["network_downtime_ms"] for r in rounds)))
    figures.append(("trace downtime per round (ms)", ", ".join("%.2f" % r["downtime_ms"] for r in rounds)))
    figures.append(("libvirt downtime per round (ms)", ", ".join("%.0f" % r["libvirt_downtime_ms"] for r in rounds)))
    figures.append(("probes lost per round", ", ".join("%d/%d" % (r["probes_lost"], r["probes_sent"]) for r in rounds)))
    figures.append(("probe sender jitter per round (ms)", ", ".join("%.2f" % r["probe_jitter_ms"] for r in rounds)))


def test_the_report_shows_the_three_figures(probed):
    report, text, titles = probed
    assert TABLE_HEADER in text
    assert "## What the guest's clients saw" in text
    for item in report["rounds"]:
        row = "| %s | %s | %s | %s |" % (item["round"], _report.fmt_ms(item["downtime_ms"]),
                                         _report.fmt_ms(item["libvirt_downtime_ms"]), _report.fmt_ms(item["network_downtime_ms"]))
        assert any(line.startswith(row) for line in text.splitlines()), (row, text)
    for figure in (" network ", " libvirt "):
        assert sum(1 for title in titles if figure in title) == len(report["rounds"]), titles


def test_a_guest_whose_address_answers_nothing_is_measured_without_it(lab, tmp_path):  # pylint: disable=unused-argument
    assert not answers(SILENT_ADDRESS)
    report, text, _titles = played(tmp_path, "-e", "migration_rounds=1", "-e", "kae_guest_address=%s" % SILENT_ADDRESS)
    item = report["rounds"][0]
    assert item["outcome"] == "migrated" and item["downtime_ms"] > 0, item
    assert item["network_downtime_ms"] is None and item["probe_from"] == "localhost", item
    assert item["probe_error"], item
    assert "| probe failed |" in text
    assert _report._cell(item["probe_error"]) in text  # pylint: disable=protected-access
