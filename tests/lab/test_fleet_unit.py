# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet playbook outside this repository uses the migration unit on the lab, as an operator would.

The playbook, its inventory (its own host names, reaching the lab hosts through ansible_host) and its
ansible.cfg live in a temporary directory; the collection comes from the tarball that
``ansible-galaxy collection build`` makes of this repository, installed into a temporary collections path.
The playbook migrates the lab guest with ``include_role: openeuler.kae.migration, tasks_from: migrate``
once with NTP servers and once back without, and writes the report with the role openeuler.kae.report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils._record import RECORD_FIELDS
from conftest import REPO, VENV_BIN

# The fleet's names for the lab hosts: nothing in the collection may rely on the lab's inventory names.
FLEET_NAMES = {"kae-lab-a": "hv-east", "kae-lab-b": "hv-west"}

INVENTORY = """
all:
  children:
    hypervisors:
      hosts:
{hosts}
      vars:
        ansible_user: root
        ansible_python_interpreter: /usr/bin/python3
        ansible_ssh_private_key_file: {key}
        ansible_ssh_common_args: -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes -o BatchMode=yes
"""

PLAYBOOK = """
- name: Move one guest off a hypervisor, measured, and report it
  hosts: localhost
  gather_facts: false
  vars:
    fleet_guest: {guest}
    # How the hypervisors reach each other, and where their KAE devices are (simulated in the lab).
    fleet_addresses: {addresses}
    fleet_sysfs: {sysfs}
    fleet_records: []
  tasks:
    - name: Migrate with the clocks measured against NTP
      ansible.builtin.include_role:
        name: openeuler.kae.migration
        tasks_from: migrate
      vars:
        migration_domain: "{{{{ fleet_guest }}}}"
        migration_source: "{{{{ fleet_from }}}}"
        migration_destination: "{{{{ fleet_to }}}}"
        migration_peer_names: "{{{{ fleet_addresses }}}}"
        migration_sysfs_roots: "{{{{ fleet_sysfs }}}}"
        migration_ntp_servers: [{ntp}]
        migration_round: 1

    - name: Keep the first record
      ansible.builtin.set_fact:
        fleet_records: "{{{{ fleet_records + [migration_record] }}}}"

    - name: Migrate back without NTP servers
      ansible.builtin.include_role:
        name: openeuler.kae.migration
        tasks_from: migrate
      vars:
        migration_domain: "{{{{ fleet_guest }}}}"
        migration_source: "{{{{ fleet_to }}}}"
        migration_destination: "{{{{ fleet_from }}}}"
        migration_peer_names: "{{{{ fleet_addresses }}}}"
        migration_sysfs_roots: "{{{{ fleet_sysfs }}}}"
        migration_round: 2

    - name: Keep the second record
      ansible.builtin.set_fact:
        fleet_records: "{{{{ fleet_records + [migration_record] }}}}"

    - name: Save the records for the checks
      ansible.builtin.copy:
        content: "{{{{ fleet_records | to_json }}}}"
        dest: "{{{{ playbook_dir }}}}/records.json"
        mode: "0644"

    - name: Write the report
      ansible.builtin.include_role:
        name: openeuler.kae.report
      vars:
        report_rounds: "{{{{ fleet_records }}}}"
        report_environment: {{hosts: ["{{{{ fleet_from }}}}", "{{{{ fleet_to }}}}"], lab: true}}
        report_dir: "{{{{ playbook_dir }}}}/reports"
        report_run_id: fleet
"""


def tracked_files():
    """The files git would commit, as the package stage copies them (no virtual environments, no outputs)."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode()
    return [path for path in listed.split("\0") if path and (REPO / path).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A collections path holding openeuler.kae installed from the tarball built from this tree."""
    work = tmp_path_factory.mktemp("fleet-build")
    tree = work / "src"
    for path in tracked_files():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(str(REPO / path), str(tree / path))
    galaxy = str(VENV_BIN / "ansible-galaxy")
    # Away from this repository's ansible.cfg, whose collections path already holds openeuler.kae.
    (work / "ansible.cfg").write_text("[defaults]\ncollections_path = %s\n" % (work / "collections"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(work / "ansible.cfg"))
    subprocess.run([galaxy, "collection", "build", "--output-path", str(work), str(tree)], cwd=str(work), env=env,
                   check=True, capture_output=True)
    tarball = next(work.glob("openeuler-kae-*.tar.gz"))
    collections = work / "collections"
    subprocess.run([galaxy, "collection", "install", "--offline", "--force", "-p", str(collections), str(tarball)],
                   cwd=str(work), env=env, check=True, capture_output=True)
    assert (collections / "ansible_collections" / "openeuler" / "kae" / "roles" / "migration").is_dir()
    return collections


def write_fleet(directory, lab, collections):
    """The fleet's ansible.cfg, inventory and playbook in DIRECTORY; return the playbook path."""
    hosts = "\n".join("        %s:\n          ansible_host: %s" % (FLEET_NAMES[name], address) for name, address in lab.hosts.items())
    (directory / "inventory.yml").write_text(INVENTORY.format(hosts=hosts, key=lab.kaelab.LAB_KEY, known_hosts=lab.kaelab.KNOWN_HOSTS))
    (directory / "ansible.cfg").write_text(
        "[defaults]\ninventory = inventory.yml\ncollections_path = %s\nhost_key_checking = True\n"
        "[ssh_connection]\npipelining = True\n" % collections)
    addresses = {FLEET_NAMES[name]: address for name, address in lab.hosts.items()}
    sysfs = {FLEET_NAMES[host.name]: str(host.sysfs) for host in lab.kaelab.HOSTS}
    playbook = directory / "fleet.yml"
    playbook.write_text(PLAYBOOK.format(guest=lab.guest, addresses=json.dumps(addresses), sysfs=json.dumps(sysfs), ntp=lab.ntp_server))
    return playbook


def test_a_fleet_playbook_migrates_with_the_unit_and_reports(lab, conns, installed, tmp_path, ansible_playbook):
    # The guest's trace arguments are the guest phase's job (another test may have restarted the guest without them).
    guest_phase = ansible_playbook("playbooks/kae_migrate.yml", "--tags", "guest")
    assert guest_phase.returncode == 0, guest_phase.stdout[-3000:]
    running = lab.running_on(conns)
    assert len(running) == 1, "the guest must run on exactly one lab host, it runs on %s" % running
    source = running[0]
    destination = next(name for name in lab.hosts if name != source)
    playbook = write_fleet(tmp_path, lab, installed)
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    for name in ("ANSIBLE_INVENTORY", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
        env.pop(name, None)
    done = subprocess.run([str(VENV_BIN / "ansible-playbook"), str(playbook), "-e", "fleet_from=%s" % FLEET_NAMES[source],
                           "-e", "fleet_to=%s" % FLEET_NAMES[destination]],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    # The collection came from the installed tarball, not from this tree.
    assert str(REPO) not in done.stdout

    records = json.loads((tmp_path / "records.json").read_text())
    assert [tuple(record) for record in records] == [RECORD_FIELDS] * 2
    first, second = records
    assert (first["source"], first["destination"]) == (FLEET_NAMES[source], FLEET_NAMES[destination])
    assert (second["source"], second["destination"]) == (FLEET_NAMES[destination], FLEET_NAMES[source])
    for record in records:
        assert record["status"] == "passed" and record["outcome"] == "migrated", record
        assert record["guest"] == lab.guest and record["downtime_ms"] > 0 and record["libvirt_downtime_ms"] is not None
    assert first["clock_corrected"] is True and first["clock_offset_ms"] is not None
    assert second["clock_corrected"] is False and second["clock_offset_ms"] is None
    assert "migration_ntp_servers is empty" in done.stdout
    assert "clocks not measured (no NTP server)" in done.stdout

    report = json.loads((tmp_path / "reports" / "fleet" / "report.json").read_text())
    assert [item["round"] for item in report["rounds"]] == [1, 2]
    assert report["summary"]["rounds_clock_uncorrected"] == 1 and report["summary"]["passed"] is True
    assert "clocks not measured in 1 of 2 rounds" in done.stdout
    assert "not measured (uncorrected)" in (tmp_path / "reports" / "fleet" / "report.md").read_text()
    # Back where it started, on one host.
    assert lab.running_on(conns) == [source]
