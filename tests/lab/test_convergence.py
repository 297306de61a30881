# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Convergence against the two-host lab: progress while the migration runs, a guest that cannot converge at a low
maximum downtime with a bandwidth cap (aborted by the progress timeout), the stepwise schedule that makes it converge,
and the pre-flight estimate of each.

The lab guest's memory dirtier is set with `kaelab.py guest-dirty`: off for a guest that converges easily over a
16 MiB/s link (what its kernel and its gzip loop dirty, about 5 MiB/s, stays well below that), and asked for more
than the emulated CPU can write for one that cannot over an 8 MiB/s link. The capped dirtier writes new content on
every pass, which QEMU's page sampling (the estimate's measurement) sees; the default dirtier rewrites the same
content, which it does not. The default is put back at the end.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import run_ansible_playbook

PLAYBOOK = "playbooks/kae_migrate.yml"
# A cap a fast dirtier outruns under TCG (QEMU's page sampling read 12 MiB/s for one asked for 30), and rates below
# and far above it.
CAP_MIB_S = 8
EASY_CAP_MIB_S = 16
EASY_DIRTY_MIB_S = 0
FAST_DIRTY_MIB_S = 64
LINE = re.compile(r'"msg": "kae-guest (\d+\.\d+) s: (\d+\.\d+) MiB of (\d+\.\d+) MiB left, .* sent, dirty .*, iteration \d+, '
                  r'expected downtime .* \(limit (\d+) ms\)"')
ESTIMATE = re.compile(r'"msg": "estimate for kae-guest on (\S+): (dirty rate [\d.]+ MiB/s, bandwidth [\d.]+ MiB/s: (converges|does not converge)[^;"]*)')


def set_dirty_rate(lab, rate):
    done = lab.cli("guest-dirty", str(rate))
    assert done.returncode == 0, done.stdout + done.stderr


def migrate_once(tmp_path, *extra):
    """One round of the playbook (hosts already prepared) with EXTRA variables; the run, its report and the report's directory."""
    args = ["--skip-tags", "host", "-e", "report_dir=%s" % tmp_path, "-e", "migration_rounds=1"]
    for item in extra:
        args += ["-e", json.dumps(item)]
    done = run_ansible_playbook(PLAYBOOK, *args)
    report_file = tmp_path / "latest" / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else None
    return done, report, tmp_path / "latest"


def estimate_said(done, figures, label):
    found = ESTIMATE.findall(done.stdout)
    assert len(found) == 1, done.stdout[-3000:]
    figures.append(("estimate, " + label, found[0][1]))
    return found[0][2] == "converges"


def note(figures, label, item):
    """The round's figures for the terminal summary (docs/convergence.md), never asserted."""
    figures.append((label, "outcome %s, %s s, downtime %s ms, %d samples, step %s (%s ms), limit %s" % (
        item["outcome"], item["duration_s"], item["downtime_ms"], len(item["progress"]), item["downtime_step"],
        item["max_downtime_final_ms"], (item["limit"] or {}).get("name"))))


@pytest.fixture(scope="module", autouse=True)
def default_dirtier_after(lab):
    """The guest's default dirtier is put back when this module's tests are done (later tests expect it)."""
    yield
    set_dirty_rate(lab, "default")


@pytest.fixture(scope="module")
def easy(lab, tmp_path_factory):
    """A guest without its dirtier, migrated over a 16 MiB/s link at 100 ms."""
    set_dirty_rate(lab, EASY_DIRTY_MIB_S)
    return migrate_once(tmp_path_factory.mktemp("easy"), {"migration_bandwidth_mib_s": EASY_CAP_MIB_S, "migration_progress_timeout_s": 30})


@pytest.fixture(scope="module")
def stuck(lab, tmp_path_factory):
    """The fast dirtier over an 8 MiB/s link at 100 ms, a 15 s progress timeout: the guest does not converge."""
    set_dirty_rate(lab, FAST_DIRTY_MIB_S)
    return migrate_once(tmp_path_factory.mktemp("stuck"), {"migration_bandwidth_mib_s": CAP_MIB_S, "migration_progress_timeout_s": 15})


@pytest.fixture(scope="module")
def stepped(stuck, tmp_path_factory):
    """The same guest with the maximum downtime raised every 8 s in two steps up to 5 s (the threshold too), where its
    32 MiB working set fits in the downtime at 8 MiB/s."""
    variables = {"migration_bandwidth_mib_s": CAP_MIB_S, "migration_progress_timeout_s": 60, "migration_threshold_ms": 5000,
                 "migration_downtime_schedule": {"steps": 2, "delay_s": 8}}
    return migrate_once(tmp_path_factory.mktemp("stepped"), variables)


def test_progress_lines_appear_while_it_runs_and_their_samples_reach_the_report(easy):
    done, report, run_dir = easy
    assert done.returncode == 0, done.stdout[-3000:]
    lines = LINE.findall(done.stdout)
    assert lines, done.stdout[-3000:]
    assert [int(line[3]) for line in lines] == [100] * len(lines)
    seconds = [float(line[0]) for line in lines]
    assert seconds == sorted(seconds)
    item = report["rounds"][0]
    assert item["outcome"] == "migrated" and item["status"] == "passed"
    assert len(item["progress"]) >= 1 and item["downtime_step"] == 0 and item["max_downtime_final_ms"] == 100
    assert all(sample["max_downtime_ms"] == 100 for sample in item["progress"])
    assert item["limit"] is None and item["suspended"] is None
    markdown = (run_dir / "report.md").read_text()
    assert "## Convergence" in markdown and "progress.svg" in markdown
    assert "<polyline" in (run_dir / "progress.svg").read_text()


def test_the_guest_restarted_with_its_dirtier_capped_answers_on_the_network(lab, easy):
    # `guest-dirty` boots the guest again: its network modules must be in the initramfs it boots from.
    del easy
    address = lab.kaelab._guestnet().GUEST_ADDR  # pylint: disable=protected-access
    ping = subprocess.run(["ping", "-c", "3", "-i", "0.3", "-W", "2", address], capture_output=True, text=True, check=False)
    assert ping.returncode == 0, ping.stdout


def test_the_estimate_predicts_the_guest_that_converges(easy, figures):
    done, report = easy[:2]
    note(figures, "easy guest", report["rounds"][0])
    assert estimate_said(done, figures, "easy guest") is True
    assert report["rounds"][0]["outcome"] == "migrated"


def test_a_guest_that_cannot_converge_is_aborted_by_the_progress_timeout_and_stays_on_its_source(lab, conns, stuck):
    done, report = stuck[:2]
    assert done.returncode != 0
    item = report["rounds"][0]
    assert item["status"] == "error" and item["outcome"] == "aborted", item["error"]
    assert item["limit"]["name"] == "progress_timeout_s" and item["limit"]["value_s"] == 15.0
    assert "made no progress for progress_timeout_s 15.0 s (remaining " in item["error"]
    assert re.search(r"the migration cannot converge at 100 ms|above the 100 ms allowed", item["error"]), item["error"]
    assert item["error"].endswith("the job was aborted and %s is still running on %s" % (lab.guest, item["source"]))
    assert lab.running_on(conns) == [item["source"]]
    assert len(item["progress"]) >= 3


def test_the_estimate_predicts_the_guest_that_does_not_converge(stuck, figures):
    done, report = stuck[:2]
    note(figures, "stuck guest", report["rounds"][0])
    assert estimate_said(done, figures, "stuck guest") is False
    assert "migration_estimate_action is warn, so the migration goes ahead" in done.stdout
    assert report["rounds"][0]["outcome"] == "aborted"


def test_the_stepwise_schedule_makes_it_converge_at_a_later_step(lab, conns, stepped, figures):
    done, report, run_dir = stepped
    item = report["rounds"][0]
    note(figures, "stepped guest", item)
    assert item["outcome"] == "migrated", item["error"]
    assert item["downtime_step"] >= 1
    # 100 ms, then 2550 and 5000 ms: the step the record names is the value it ended at.
    assert item["max_downtime_final_ms"] == [100, 2550, 5000][item["downtime_step"]]
    # A raise comes with a sample and takes effect after it: the last sample shows the step before at most.
    assert item["progress"][-1]["max_downtime_ms"] in [100, 2550, 5000][max(0, item["downtime_step"] - 1):item["downtime_step"] + 1]
    assert lab.running_on(conns) == [item["destination"]]
    assert "(step %d)" % item["downtime_step"] in (run_dir / "report.md").read_text()


def test_a_sweep_of_three_settings_writes_the_tuning_curve(stepped, tmp_path, figures):
    done, report, run_dir = migrate_once(tmp_path, {"migration_sweep_max_downtime_ms": [50, 200, 800], "migration_threshold_ms": 5000,
                                                    "migration_estimate_action": "skip"})
    assert done.returncode == 0, done.stdout[-3000:]
    for item in report["rounds"]:
        note(figures, "sweep %s ms" % item["max_downtime_final_ms"], item)
    assert [item["round"] for item in report["rounds"]] == [1, 2, 3]
    assert [item["max_downtime_final_ms"] for item in report["rounds"]] == [50, 200, 800]
    assert "## Tuning curve" in (run_dir / "report.md").read_text()
    assert (run_dir / "sweep.svg").read_text().count("<circle") == 6
