# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The entry point migrate of openeuler.kae.migration run by ansible-playbook on this machine, without a lab.

No libvirt answers here, so the migration step fails: the unit must still end with one record of the contract's
keys (status error, naming the step), say that the clocks were not measured, and leave the play running.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.openeuler.kae.plugins.module_utils._record import RECORD_FIELDS

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "migration"
PLAY = """
- name: One migration with the unit
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Migrate
      ansible.builtin.include_role:
        name: openeuler.kae.migration
        tasks_from: migrate
    - name: Save the record
      ansible.builtin.copy:
        content: "{{ migration_record | to_json }}"
        dest: "{{ playbook_dir }}/record.json"
        mode: "0644"
"""


def run_unit(tmp_path, **role_vars):
    (tmp_path / "play.yml").write_text(PLAY)
    role_vars = dict({"migration_domain": "kae-guest", "migration_source": "localhost", "migration_destination": "hv-2",
                      "migration_remap": False, "migration_round": 4}, **role_vars)
    (tmp_path / "vars.json").write_text(json.dumps(role_vars))
    inventory = tmp_path / "hosts.yml"
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": local, "hv-2": local}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(tmp_path / "play.yml"),
            "-i", str(inventory), "-e", "@" + str(tmp_path / "vars.json"),
            # A libvirt that cannot answer: the migration step fails at once.
            "-e", json.dumps({"migration_destination_uri_format": "qemu+unix:///system?socket=/nonexistent/%s"})]
    return subprocess.run(argv, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_failed_migration_still_ends_in_one_record_of_the_contract(tmp_path):
    done = run_unit(tmp_path)
    assert done.returncode == 0, done.stdout[-4000:]
    record = json.loads((tmp_path / "record.json").read_text())
    assert tuple(record) == RECORD_FIELDS
    assert record["status"] == "error" and record["outcome"] == "unknown"
    assert record["error"].startswith("Migrate the guest: cannot connect to libvirt at "), record["error"]
    assert (record["round"], record["guest"], record["source"], record["destination"]) == (4, "kae-guest", "localhost", "hv-2")
    assert record["clock_corrected"] is False and record["clock_offset_ms"] is None and record["downtime_ms"] is None
    assert record["threshold_ms"] == 200.0
    assert "migration_ntp_servers is empty: the clocks of localhost and hv-2 are not measured" in done.stdout
    assert "kae-guest: localhost -> hv-2: error (Migrate the guest: " in done.stdout
    assert record["probe_error"] == "not measured: no probe address for this guest" and record["network_downtime_ms"] is None
    assert "; network not measured: no probe address for this guest" in done.stdout


def test_bad_variables_are_refused_before_any_host_is_asked(tmp_path):
    done = run_unit(tmp_path, migration_sysfs_roots={"localhost": "relative/sys"})
    assert done.returncode != 0
    assert "migration_sysfs_roots must map inventory host names to absolute sysfs paths" in done.stdout
    assert "Mark where both hosts' QEMU logs" not in done.stdout


@pytest.mark.parametrize("extra, message", [
    ({"migration_probe_address": "guest.example"}, "migration_probe_address must be empty (no probes) or the guest's IPv4"),
    ({"migration_probe_address": "10.0.0.5", "migration_probe_interval_ms": 0.1},
     "migration_probe_interval_ms must be a number of milliseconds from 1 to 1000"),
])
def test_bad_probe_variables_are_refused_before_any_host_is_asked(tmp_path, extra, message):
    done = run_unit(tmp_path, **extra)
    assert done.returncode != 0 and message in done.stdout, done.stdout[-3000:]
    assert "Start probing the guest's address" not in done.stdout


def test_the_unit_ends_in_one_set_fact_of_the_record_whatever_happened():
    """block and rescue alike: the record is built once, in always, by the migration_record filter."""
    tasks = yaml.safe_load((ROLE / "tasks" / "measure.yml").read_text())
    assert len(tasks) == 1
    unit = tasks[0]
    # The probes (when a probe address is given) are stopped and collected first, so the record has them.
    assert [list(task) for task in unit["always"]] == [["name", "ansible.builtin.include_tasks", "when"], ["name", "ansible.builtin.set_fact"]]
    assert unit["always"][0]["ansible.builtin.include_tasks"] == "probe_collect.yml"
    built = unit["always"][1]["ansible.builtin.set_fact"]
    # The record, and where each log ended when it was read (the next round's marks).
    assert sorted(built) == ["migration_log_ends", "migration_record"]
    assert "| openeuler.kae.migration_record }}" in built["migration_record"]
    assert [next(key for key in task if key.startswith("ansible.")) for task in unit["rescue"]] == ["ansible.builtin.set_fact"]
    text = (ROLE / "tasks" / "measure.yml").read_text()
    assert "ansible.builtin.stat" not in text and text.count("openeuler.kae.device_info") == 1


def test_the_migrate_entry_point_declares_what_a_fleet_playbook_gives():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = specs["migrate"]["options"]
    assert {name for name, spec in options.items() if spec.get("required")} == {"migration_domain", "migration_source", "migration_destination"}
    assert {"migration_destination_xml", "migration_remap", "migration_ntp_servers", "migration_threshold_ms",
            "migration_sysfs_roots"} <= set(options)
    assert options["migration_ntp_servers"]["default"] == []


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("fping"), reason="probes at a 1 ms interval need root and fping")
def test_probes_run_around_the_migration_and_reach_the_record(tmp_path):
    done = run_unit(tmp_path, migration_probe_address="127.0.0.1")
    assert done.returncode == 0, done.stdout[-4000:]
    record = json.loads((tmp_path / "record.json").read_text())
    assert tuple(record) == RECORD_FIELDS and record["status"] == "error"
    # The migration failed at once, yet the probes ran from before it until the unit stopped them.
    assert record["probe_error"] is None and record["probe_from"] == "localhost", record["probe_error"]
    assert record["probes_sent"] >= 100 and record["probes_lost"] <= 2 and record["probe_interval_ms"] == 1.0
    assert 0 < record["network_downtime_ms"] < 1000
    assert "ms without an answer from localhost" in done.stdout
    # Its stop file (one per migration, named after the guest and its source) is gone.
    assert not glob.glob("/run/kae-probe-kae-guest-localhost-*.stop")


@pytest.mark.parametrize("extra, message", [
    ({"migration_downtime_schedule": {"steps": 2, "delay_s": 5, "ceiling_ms": 50}}, "migration_downtime_schedule must be empty or a mapping"),
    ({"migration_downtime_schedule": {"steps": 2, "delay_s": 5, "every": 3}}, "migration_downtime_schedule must be empty or a mapping"),
    ({"migration_progress_interval_s": 0}, "migration_progress_interval_s must be a whole number of seconds from 1 to 60"),
    ({"migration_completion_timeout_s_per_gib": -1}, "migration_completion_timeout_s_per_gib must be a finite number"),
    ({"migration_sweep_max_downtime_ms": [50, 0]}, "migration_sweep_max_downtime_ms must be a list of at most 20"),
    ({"migration_sweep_max_downtime_ms": [50, 100], "migration_downtime_schedule": {"steps": 1, "delay_s": 5}},
     "cannot be combined with migration_downtime_schedule"),
])
def test_bad_convergence_variables_are_refused_before_any_host_is_asked(tmp_path, extra, message):
    done = run_unit(tmp_path, **extra)
    assert done.returncode != 0 and message in done.stdout, done.stdout[-3000:]
    assert "Start the migration of the guest" not in done.stdout


def test_the_migration_runs_as_an_async_job_polled_until_it_ends(tmp_path):
    done = run_unit(tmp_path, migration_downtime_schedule={"steps": 2, "delay_s": 5}, migration_at_limit="suspend")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "TASK [openeuler.kae.migration : Start the migration of the guest]" in done.stdout
    # The job failed at once: the first poll finds no libvirt job and the async job over, so no second poll.
    assert "Check whether the migration's async job ended, poll 1" in done.stdout
    assert "poll 2" not in done.stdout
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["error"].startswith("Migrate the guest: cannot connect to libvirt at "), record["error"]
    assert record["progress"] == [] and record["limit"] is None


def test_the_progress_polls_are_bounded_by_the_migrations_own_limit():
    tasks = yaml.safe_load((ROLE / "tasks" / "progress.yml").read_text())
    again = tasks[-1]
    assert again["ansible.builtin.include_tasks"] == "progress.yml"
    assert "migration_poll | int < migration_max_polls | int" in again["when"]
    unit = yaml.safe_load((ROLE / "tasks" / "measure.yml").read_text())[0]
    started = next(task for task in unit["block"] if task["name"] == "Start the migration of the guest")
    assert started["poll"] == 0 and "migration_async_margin_s" in started["async"]
    assert unit["vars"]["migration_async_margin_s"] >= 90


def test_an_estimate_that_cannot_be_made_warns_and_the_migration_goes_ahead(tmp_path):
    done = run_unit(tmp_path)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "estimate for kae-guest on localhost: not made: cannot connect to libvirt" in done.stdout, done.stdout[-4000:]
    assert "TASK [openeuler.kae.migration : Start the migration of the guest]" in done.stdout


def test_with_estimate_action_fail_an_estimate_that_cannot_be_made_refuses_the_migration(tmp_path):
    done = run_unit(tmp_path, migration_estimate_action="fail")
    assert done.returncode != 0
    assert "the estimate for kae-guest could not be made: cannot connect to libvirt" in done.stdout, done.stdout[-4000:]
    assert "nothing was migrated (migration_estimate_action is fail" in done.stdout
    assert "Start the migration of the guest" not in done.stdout
