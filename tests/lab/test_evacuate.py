# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/kae_evacuate.yml against the lab: the plan in check mode, the evacuation, its report, a second run that
changes nothing, and the same playbook through ansible-runner (as AWX and Automation Platform run it).

In the default two-host lab the guest holds no VF that the collection can see (none can be attached), so the
evacuation moves every guest (kae_evacuate_all_guests): the guest goes to the other host.
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import KAELAB, REPO, _ansible_env

PLAYBOOK = "playbooks/kae_evacuate.yml"


def recap(output):
    """{host: {ok, changed, failed, ...}} from the PLAY RECAP."""
    found = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M):
        found[host] = dict((key, int(value)) for key, value in re.findall(r"(\w+)=(\d+)", counts))
    assert found, "no PLAY RECAP in:\n%s" % output[-3000:]
    return found


def guest_phase(ansible_playbook):
    # The guest's trace arguments are the guest phase's job (another test may have restarted it without them).
    done = ansible_playbook("playbooks/kae_migrate.yml", "--tags", "guest")
    assert done.returncode == 0, done.stdout[-3000:]


def evacuate(ansible_playbook, host, *extra):
    return ansible_playbook(PLAYBOOK, "-e", "kae_evacuate_host=%s" % host, "-e", "kae_evacuate_all_guests=true", *extra)


def test_nothing_moves_without_a_place_and_a_failed_migration_fails_the_run_at_the_end(lab, conns, ansible_playbook, tmp_path):
    guest_phase(ansible_playbook)
    running = lab.running_on(conns)
    assert len(running) == 1, running
    source = running[0]
    destination = next(name for name in lab.hosts if name != source)

    # The only other host excluded: the guest cannot be placed, and the run stops before anything moves.
    stopped = evacuate(ansible_playbook, source, "-e", '{"kae_evacuate_exclude": ["%s"]}' % destination)
    assert stopped.returncode != 0
    assert "1 guest(s) of %s cannot be placed (%s; reasons above); nothing was moved" % (source, lab.guest) in stopped.stdout
    assert "excluded" in stopped.stdout
    skipped = evacuate(ansible_playbook, source, "-e", '{"kae_evacuate_exclude": ["%s"]}' % destination, "-e", "kae_evacuate_skip_unplaced=true")
    assert skipped.returncode == 0, skipped.stdout[-3000:]
    assert "evacuation_skip_unplaced: %s stay on %s" % (lab.guest, source) in skipped.stdout
    assert all(counts["changed"] == 0 for counts in recap(skipped.stdout).values())
    assert lab.running_on(conns) == [source]

    # A migration that cannot finish in time is aborted, recorded with its error, reported, and fails the run at the end.
    # The bandwidth cap keeps the migration going for about 24 s, so the abort cannot race its completion.
    failed = evacuate(ansible_playbook, source, "-e", "kae_evacuate_report_dir=%s" % (tmp_path / "reports"), "-e", "migration_timeout_s=0.01",
                      "-e", "migration_bandwidth_mib_s=8")
    assert failed.returncode != 0
    assert lab.running_on(conns) == [source]
    report = json.loads((tmp_path / "reports" / "latest" / "report.json").read_text())
    [row] = report["evacuation"]["guests"]
    assert row["status"] == "error" and "did not finish within 0.01 s" in row["message"] and row["downtime_ms"] is None
    assert report["rounds"][0]["outcome"] == "aborted"
    assert recap(failed.stdout)["localhost"]["failed"] == 1
    assert recap(failed.stdout)["evacuation-%s-001" % source]["failed"] == 0


def test_evacuation_moves_the_guest_reports_it_and_a_second_run_changes_nothing(lab, conns, ansible_playbook, tmp_path, figures):
    guest_phase(ansible_playbook)
    running = lab.running_on(conns)
    assert len(running) == 1, running
    source = running[0]
    destination = next(name for name in lab.hosts if name != source)
    reports = tmp_path / "reports"

    planned = evacuate(ansible_playbook, source, "--check")
    assert planned.returncode == 0, planned.stdout[-4000:]
    assert "batch 1: %s: %s -> %s" % (lab.guest, source, destination) in planned.stdout
    assert "check mode: the plan above is what a real run would do; nothing was moved" in planned.stdout
    assert lab.running_on(conns) == [source]
    assert all(counts["changed"] == 0 for counts in recap(planned.stdout).values())

    started = time.monotonic()
    # The guest is probed on the lab network while it moves: its row has the network-observed downtime too.
    probes = json.dumps({"kae_evacuate_probe_addresses": {lab.guest: KAELAB._guestnet().GUEST_ADDR}})  # pylint: disable=protected-access
    done = evacuate(ansible_playbook, source, "-e", "kae_evacuate_report_dir=%s" % reports, "-e", probes)
    figures.append(("evacuation of one guest, whole playbook (s)", round(time.monotonic() - started, 1)))
    assert done.returncode == 0, done.stdout[-6000:]
    assert lab.running_on(conns) == [destination]

    report = json.loads((reports / "latest" / "report.json").read_text())
    rows = report["evacuation"]["guests"]
    assert [(row["guest"], row["source"], row["destination"], row["status"]) for row in rows] == [(lab.guest, source, destination, "passed")]
    assert rows[0]["downtime_ms"] > 0 and rows[0]["libvirt_downtime_ms"] is not None and rows[0]["duration_s"] > 0
    assert report["summary"]["passed"] is True and report["summary"]["max_concurrent"] == 1
    assert rows[0]["probe_from"] == "localhost" and rows[0]["network_downtime_ms"] > 0
    figures.append(("evacuation downtime, trace / libvirt / network (ms)",
                    (rows[0]["downtime_ms"], rows[0]["libvirt_downtime_ms"], rows[0]["network_downtime_ms"])))
    cases = list(ET.parse(str(reports / "latest" / "junit.xml")).getroot().iter("testcase"))
    assert [case.get("name") for case in cases] == ["guest %s: %s -> %s" % (lab.guest, source, destination)]
    ET.parse(str(reports / "latest" / "timeline.svg"))
    assert "| %s | %s | %s |" % (lab.guest, source, destination) in (reports / "latest" / "report.md").read_text()

    again = evacuate(ansible_playbook, source, "-e", "kae_evacuate_report_dir=%s" % reports)
    assert again.returncode == 0, again.stdout[-4000:]
    assert all(counts["changed"] == 0 for counts in recap(again.stdout).values()), again.stdout[-3000:]
    assert "%s runs no guest to move" % source in again.stdout
    assert len(list(reports.iterdir())) == 2  # the first run's directory and latest: nothing new written
    assert lab.running_on(conns) == [destination]


def test_ansible_runner_runs_the_evacuation_and_hands_the_report_to_the_job(lab, conns, ansible_playbook, tmp_path, monkeypatch):
    ansible_runner = pytest.importorskip("ansible_runner", reason="ansible-runner is in requirements/python.txt: run scripts/bootstrap.sh")
    guest_phase(ansible_playbook)
    running = lab.running_on(conns)
    assert len(running) == 1, running
    source = running[0]
    destination = next(name for name in lab.hosts if name != source)
    env = _ansible_env()
    (tmp_path / "runner").mkdir()
    # ansible-runner finds ansible-playbook on PATH, as in an execution environment.
    monkeypatch.setenv("PATH", env["PATH"])
    result = ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"), project_dir=str(REPO), playbook=str(REPO / PLAYBOOK),
        inventory=str(REPO / "inventories" / "lab"), process_isolation=False, quiet=True,
        extravars={"kae_evacuate_host": source, "kae_evacuate_all_guests": True, "kae_evacuate_report_dir": str(tmp_path / "reports")},
        envvars={"ANSIBLE_CONFIG": env["ANSIBLE_CONFIG"], "PATH": env["PATH"], "ANSIBLE_NOCOLOR": "1"})
    assert (result.status, result.rc) == ("successful", 0), result.stdout.read()[-6000:]
    assert lab.running_on(conns) == [destination]

    events = list(result.events)
    stats = [event for event in events if event["event"] == "playbook_on_stats"]
    assert len(stats) == 1
    artifact = stats[0]["event_data"]["artifact_data"]["kae_report"]
    assert artifact["summary"]["passed"] is True and artifact["summary"]["count"] == 1
    assert artifact["run_dir"].startswith(str(tmp_path / "reports"))
    [migration] = artifact["migrations"]
    assert (migration["guest"], migration["source"], migration["destination"], migration["status"]) == (lab.guest, source, destination, "passed")
    assert migration["downtime_ms"] > 0
    # The job's own record of the run: the migration task ran on the per-guest host, delegated to the source.
    migrated = [event for event in events if event["event"] == "runner_on_ok" and event["event_data"].get("task") == "Migrate the guest"]
    assert [event["event_data"]["host"] for event in migrated] == ["evacuation-%s-001" % source]
    assert stats[0]["event_data"]["changed"].get("evacuation-%s-001" % source) == 1
    assert (tmp_path / "runner" / "artifacts").is_dir()
