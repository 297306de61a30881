# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults injected into the lab during and before a migration (docs/safety.md has the measured results).

Each test leaves kae-guest running on exactly one host with its heartbeat going on, checks that the output
says what happened, and repairs the lab in ``finally`` (link back up, ``kaelab.py up`` restarts what was
stopped), so the tests after it find the lab healthy. Faults go only to the lab's own hosts and NTP server.

Placement is read inside each host's namespaces (virsh through nsenter), not over the lab network or ssh,
which the faults break. A migration long enough to inject a fault into comes from libvirt's bandwidth limit
(the module's ``bandwidth_mib_s``): at 1 MiB/s the 192 MiB guest needs minutes, and ``timeout_s`` ends it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from conftest import REPO, VENV_BIN, _ansible_env
from test_lab import last_heartbeat, wait_until
from test_migrate import PLAYBOOK, adhoc_result, play_failure

# The migration is cut short by its timeout; the fault goes in once it streams.
MIGRATION_TIMEOUT_S = 10
BANDWIDTH_MIB_S = 1
# Bounds of every wait: the module must be done this long after the fault: its timeout, the abort's grace period
# (live_migration.ABORT_GRACE_S, 60 s) and libvirt's keepalive giving up a silent destination (about 20 s) ...
MODULE_BOUND_S = MIGRATION_TIMEOUT_S + 60 + 25
# ... and the lab repaired, with the destination's incoming QEMU gone, within this.
REPAIR_BOUND_S = 60


def host(lab, name):
    return lab.kaelab.HOSTS_BY_NAME[name]


def guest_hosts(lab):
    """Hosts whose own libvirtd (asked inside the host, not over the network) shows the guest running."""
    found = []
    for name in sorted(lab.hosts):
        pid = lab.kaelab.init_pid(host(lab, name))
        if pid is not None and lab.kaelab.guest_state(pid) == "running":
            found.append(name)
    return found


def the_guest_host(lab):
    hosts = guest_hosts(lab)
    assert len(hosts) == 1, "the guest must run on exactly one lab host, it runs on %s" % hosts
    return hosts[0]


def other(lab, name):
    return next(item for item in lab.hosts if item != name)


def qemu_pids(lab, name):
    """QEMU processes in a lab host (the guest's, or an incoming one waiting for a migration)."""
    return lab.kaelab.host_processes(lab.kaelab.init_pid(host(lab, name))).get("qemu-system-x86", [])


def repair(lab):
    """Links back up, stopped daemons and NTP server restarted; the lab must then report UP."""
    for item in lab.kaelab.HOSTS:
        if not lab.kaelab.link_is_up(item):
            lab.kaelab.link_up(item)
    up = lab.cli("up", timeout=REPAIR_BOUND_S)
    assert up.returncode == 0, up.stdout + up.stderr
    status = lab.cli("status")
    assert status.returncode == 0, status.stdout


def assert_guest_alive_on(lab, name, since):
    """The guest runs on NAME alone, with no job left on it, and its heartbeat goes on there after heartbeat SINCE."""
    assert guest_hosts(lab) == [name]
    job = lab.kaelab.virsh(lab.kaelab.init_pid(host(lab, name)), "domjobinfo", lab.guest).stdout
    assert re.search(r"^Job type:\s+None\s*$", job, re.M), job
    wait_until("heartbeats after seq %d on %s" % (since, name),
               lambda: last_heartbeat(lab.serial_log(name))[0] > since + 2, timeout=30)


def start_migration(source, destination, guest):
    """The live_migration module, ad hoc on SOURCE, in the background: a slow migration that the timeout ends."""
    args = ["domain=%s" % guest, "destination_uri=qemu+ssh://%s/system" % destination, "migrate_uri=tcp://%s" % destination,
            "bandwidth_mib_s=%d" % BANDWIDTH_MIB_S, "timeout_s=%d" % MIGRATION_TIMEOUT_S]
    argv = [str(VENV_BIN / "ansible"), source, "-m", "openeuler.kae.live_migration", "-a", " ".join(args)]
    return subprocess.Popen(argv, cwd=REPO, env=_ansible_env(), stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                            stderr=subprocess.PIPE, text=True)


DATA_PROCESSED = re.compile(r"^Data processed:\s+([\d.]+) ([KMG]iB)", re.M)


def wait_for_transfer(lab, source, migration):
    """Wait until the source's job has sent 1 MiB or more: the migration is streaming, past its preparation (the fault goes in then)."""
    pid = lab.kaelab.init_pid(host(lab, source))
    deadline = time.monotonic() + 60
    while True:
        assert migration.poll() is None, "the migration ended before it streamed:\n%s" % migration.communicate()[0]
        sent = DATA_PROCESSED.search(lab.kaelab.virsh(pid, "domjobinfo", lab.guest, check=False).stdout)
        if sent and (sent.group(2) != "KiB" and float(sent.group(1)) >= 1.0):
            return
        assert time.monotonic() < deadline, "the migration from %s sent nothing within 60 s" % source
        time.sleep(0.2)


def finish(migration, bound_s):
    """The module's result once the ad-hoc run ends (within BOUND_S), and how long it took after the fault."""
    start = time.monotonic()
    try:
        stdout, stderr = migration.communicate(timeout=bound_s)
    except subprocess.TimeoutExpired:
        migration.kill()
        stdout, stderr = migration.communicate()
        pytest.fail("the module did not end within %s s of the fault:\n%s%s" % (bound_s, stdout, stderr))
    return adhoc_result(subprocess.CompletedProcess(migration.args, migration.returncode, stdout, stderr)), time.monotonic() - start


def assert_aborted_with_destination_unknown(result, source, destination, guest):
    """The timeout aborted the job; the guest is known to run on the source, the destination could not be asked."""
    assert result["failed"] is True, result
    assert result["keepalive"] is True
    assert result["aborted"] is True
    assert result["outcome"] == "unknown"
    assert result["placement"] == {source: "running", destination: "unknown"}, result
    assert result["placement_errors"][destination]
    assert result["msg"].startswith("migration of %s from %s to %s did not finish within %s s" % (guest, source, destination,
                                                                                                  float(MIGRATION_TIMEOUT_S)))
    assert ("the job was aborted and %s is still running on %s, but %s could not be asked whether it holds a copy"
            % (guest, source, destination)) in result["msg"]


def test_destination_libvirtd_killed_during_a_migration(lab, figures):
    source = the_guest_host(lab)
    destination = other(lab, source)
    since = last_heartbeat(lab.serial_log(source))[0]
    migration = start_migration(source, destination, lab.guest)
    try:
        wait_for_transfer(lab, source, migration)
        killed = lab.kaelab.stop_daemon(host(lab, destination), "libvirtd")
        assert killed
        result, after_fault = finish(migration, MODULE_BOUND_S)
    finally:
        if migration.poll() is None:
            migration.kill()
            migration.communicate()
        repair(lab)
    figures.append(("fault: destination libvirtd killed: migration call ran (s), module ended after the fault (s)",
                    (result.get("duration_s"), round(after_fault, 1))))
    figures.append(("fault: destination libvirtd killed: result", result["msg"]))
    assert_aborted_with_destination_unknown(result, source, destination, lab.guest)
    # Restarted, the destination's libvirtd ends the incoming QEMU it finds half-prepared: no stray QEMU is left.
    wait_until("the incoming QEMU on %s to go" % destination, lambda: not qemu_pids(lab, destination), timeout=REPAIR_BOUND_S)
    assert_guest_alive_on(lab, source, since)


def test_destination_link_cut_during_a_migration(lab, figures):
    source = the_guest_host(lab)
    destination = other(lab, source)
    since = last_heartbeat(lab.serial_log(source))[0]
    migration = start_migration(source, destination, lab.guest)
    try:
        wait_for_transfer(lab, source, migration)
        lab.kaelab.link_down(host(lab, destination))
        result, after_fault = finish(migration, MODULE_BOUND_S)
    finally:
        if migration.poll() is None:
            migration.kill()
            migration.communicate()
        repair(lab)
    figures.append(("fault: destination link cut: migration call ran (s), module ended after the fault (s)",
                    (result.get("duration_s"), round(after_fault, 1))))
    figures.append(("fault: destination link cut: result", result["msg"]))
    if result.get("aborted") is False:
        # The job had not ended when the abort's grace period ran out: the module must say so, never "aborted".
        assert result["outcome"] == "unknown" and "the job was aborted" not in result["msg"], result
        assert "so the migration may still be running" in result["msg"] and destination in result["msg"], result
    else:
        assert_aborted_with_destination_unknown(result, source, destination, lab.guest)
    wait_until("the incoming QEMU on %s to go" % destination, lambda: not qemu_pids(lab, destination), timeout=REPAIR_BOUND_S)
    assert_guest_alive_on(lab, source, since)


def test_destination_sshd_stopped_before_the_preflight(lab, ansible_playbook, figures):
    source = the_guest_host(lab)
    destination = other(lab, source)
    since = last_heartbeat(lab.serial_log(source))[0]
    domain_pid = qemu_pids(lab, source)
    try:
        lab.kaelab.stop_daemon(host(lab, destination), "sshd")
        start = time.monotonic()
        done = ansible_playbook(PLAYBOOK, "--tags", "migration_preflight")
        took = time.monotonic() - start
    finally:
        repair(lab)
    failure = play_failure(done)
    figures.append(("fault: destination sshd stopped: pre-flight refused after (s)", round(took, 1)))
    figures.append(("fault: destination sshd stopped: failure", failure[-600:]))
    assert done.returncode != 0
    assert "cannot reach %s over ssh from the controller, so nothing there was checked" % destination in failure, failure
    assert "nothing was migrated" in failure
    assert qemu_pids(lab, source) == domain_pid
    assert_guest_alive_on(lab, source, since)


def test_ntp_server_stopped_before_the_clock_phase(lab, ansible_playbook, figures):
    source = the_guest_host(lab)
    since = last_heartbeat(lab.serial_log(source))[0]
    domain_pid = qemu_pids(lab, source)
    try:
        lab.kaelab.stop_ntp()
        start = time.monotonic()
        done = ansible_playbook(PLAYBOOK, "--tags", "migration_clock", "-e", json.dumps({"migration_ntp_samples": 1}))
        took = time.monotonic() - start
    finally:
        repair(lab)
    failure = play_failure(done)
    figures.append(("fault: NTP server stopped: clock phase refused after (s)", round(took, 1)))
    figures.append(("fault: NTP server stopped: failure", failure[-600:]))
    assert done.returncode != 0
    assert "no NTP server answered (%s: " % lab.ntp_server in failure, failure
    assert qemu_pids(lab, source) == domain_pid
    assert_guest_alive_on(lab, source, since)
