# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local two-host lab behaves like a pair of real hypervisors (lab/kaelab.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import libvirt
import pytest

HEARTBEAT = re.compile(r"kae-heartbeat seq=(\d+) uptime=([\d.]+)")


def last_heartbeat(path):
    """(seq, uptime) of the last heartbeat line in a serial log, or (0, 0.0)."""
    try:
        beats = HEARTBEAT.findall(path.read_text(errors="replace"))
    except FileNotFoundError:
        return 0, 0.0
    return (int(beats[-1][0]), float(beats[-1][1])) if beats else (0, 0.0)


def wait_until(what, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.1)


def host_snapshot(kaelab):
    """Init, daemon and QEMU PIDs of each host: what a no-op `up` must leave untouched."""
    health = kaelab.lab_health()
    return {h["name"]: (h["init"], h["daemons"], h["guest"], kaelab.host_processes(h["init"]).get("qemu-system-x86"))
            for h in health["hosts"]}, health["chrony"]


def test_second_up_changes_nothing(lab):
    before = host_snapshot(lab.kaelab)
    again = lab.cli("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing changed" in again.stdout
    assert host_snapshot(lab.kaelab) == before


def test_status_shows_both_hosts_up(lab):
    status = lab.cli("status")
    assert status.returncode == 0, status.stdout
    for name, addr in lab.hosts.items():
        assert re.search(r"^%s \(%s\): up, init pid \d+$" % (name, re.escape(addr)), status.stdout, re.M)
        assert "address eth0: %s/24" % addr in status.stdout
        assert re.search(r"simulated KAE sysfs: /var/lib/kae-lab/hosts/%s/sysfs \(kernel player: \d+\)" % name, status.stdout)
    assert re.search(r"^lab: up; %s running on: kae-lab-[ab]$" % lab.guest, status.stdout, re.M)


def test_ansible_reaches_each_host_with_pinned_keys(lab, ansible_adhoc):
    ping = ansible_adhoc("kae_hypervisors", "ansible.builtin.ping")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    for name in lab.hosts:
        assert re.search(r"^%s \| SUCCESS" % name, ping.stdout, re.M)


def test_ansible_refuses_unknown_host_keys(lab, ansible_adhoc):
    empty = "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes"
    # A fresh connection (no shared master from earlier tests) that knows no host key. Without pipelining the first
    # command carries no module on stdin, so ssh's own refusal is what Ansible reports (not a broken pipe).
    ping = ansible_adhoc("kae-lab-a", "ansible.builtin.ping", "", "-e", "ansible_ssh_common_args='%s'" % empty,
                         "-e", "ansible_ssh_args='-o ControlMaster=no -o ControlPath=none'", "-e", "ansible_pipelining=false")
    assert ping.returncode != 0
    assert "UNREACHABLE" in ping.stdout and "Host key verification failed" in ping.stdout


def test_hosts_have_own_hostname_libraries_and_ntp(lab, ansible_adhoc):
    probe = ("/usr/bin/python3 -c \"import json, socket, libvirt, ntplib; "
             "r = ntplib.NTPClient().request('%s', version=3, timeout=2); "
             "print(json.dumps({'host': socket.gethostname(), 'stratum': r.stratum, 'offset': r.offset}))\""
             % lab.ntp_server)
    result = ansible_adhoc("kae_hypervisors", "ansible.builtin.command", probe)
    assert result.returncode == 0, result.stdout + result.stderr
    answers = {}
    for name in lab.hosts:
        block = result.stdout.split("%s | CHANGED | rc=0 >>" % name, 1)[1]
        answers[name] = json.loads(block.strip().splitlines()[0])
    assert {name: a["host"] for name, a in answers.items()} == {name: name for name in lab.hosts}
    for answer in answers.values():
        assert 1 <= answer["stratum"] <= 15
        # Both hosts share the controller's kernel clock, so the NTP offset is tiny.
        assert abs(answer["offset"]) < 0.5


def test_hosts_have_distinct_libvirt_identity(conns):
    uuids = {name: re.search(r"<uuid>([0-9a-f-]+)</uuid>", conn.getCapabilities()).group(1)
             for name, conn in conns.items()}
    assert len(set(uuids.values())) == len(uuids)
    assert {name: conn.getHostname() for name, conn in conns.items()} == {name: name for name in conns}


def test_guest_persistent_on_home_host_only(lab, conns):
    home = lab.kaelab.GUEST_HOME.name
    assert conns[home].lookupByName(lab.guest).isPersistent()
    for name, conn in conns.items():
        if name != home:
            assert lab.guest not in conn.listDefinedDomains()


def test_simulated_sysfs_root_exists_inside_hosts(lab, ansible_adhoc):
    result = ansible_adhoc("kae_hypervisors", "ansible.builtin.stat", "path={{ kae_sysfs_root }}")
    assert result.returncode == 0, result.stdout
    assert result.stdout.count('"isdir": true') == len(lab.hosts)


def migrate(conns, guest, src, dst):
    """Live-migrate through libvirt-python (peer to peer: the source libvirtd drives it over qemu+ssh)."""
    dom = conns[src].lookupByName(guest)
    params = {libvirt.VIR_MIGRATE_PARAM_URI: "tcp://%s" % dst}
    dom.migrateToURI3("qemu+ssh://%s/system" % dst, params, libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER)


def test_round_trip_keeps_the_guest_alive(lab, conns, figures):
    src = lab.running_on(conns)
    assert len(src) == 1, "guest should run on exactly one host, runs on %s" % src
    home = src[0]
    away = [name for name in lab.hosts if name != home][0]
    trip_start = time.monotonic()
    for src, dst in ((home, away), (away, home)):
        wait_until("a heartbeat on " + src, lambda s=src: last_heartbeat(lab.serial_log(s))[0] > 0)
        leg_start = time.monotonic()
        migrate(conns, lab.guest, src, dst)
        figures.append(("migration %s -> %s (s)" % (src, dst), round(time.monotonic() - leg_start, 2)))
        assert lab.running_on(conns) == [dst]
        seq, uptime = last_heartbeat(lab.serial_log(src))
        # The destination's serial log carries on from where the source stopped: same boot, later beats.
        wait_until("heartbeats after seq %d on %s" % (seq, dst),
                   lambda d=dst, s=seq: last_heartbeat(lab.serial_log(d))[0] > s + 2)
        assert last_heartbeat(lab.serial_log(dst))[1] > uptime
        # No trace events checked here: the lab's guest XML has no --trace argument; the guest phase of
        # kae_migrate.yml sets them (tests/lab/test_guest_role.py, test_migrate.py).
    figures.append(("round trip (s)", round(time.monotonic() - trip_start, 2)))
    assert lab.running_on(conns) == [home]


def lab_daemons_anywhere():
    """PIDs of QEMU for the lab guest and of daemons started from lab configuration, in any namespace."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read()
        except OSError:
            continue
        if (b"qemu-system" in argv and b"guest=kae-guest" in argv) or b"/var/lib/kae-lab/" in argv:
            found.append(int(pid))
    return found


def assert_nothing_left(kaelab):
    assert kaelab.lab_leftovers() == []
    assert kaelab.lab_health()["anything"] is False
    with open("/proc/self/mounts") as mounts:
        assert str(kaelab.STATE) not in mounts.read()
    assert lab_daemons_anywhere() == []


def cgroups_named(words):
    found = []
    for root, dirs, _files in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(root, d) for d in dirs if any(w in d for w in words)]
    return found


def lab_up(lab, figures, label):
    start = time.monotonic()
    up = lab.cli("up")
    assert up.returncode == 0, up.stdout + up.stderr
    figures.append((label, round(time.monotonic() - start, 2)))


@pytest.mark.lab_teardown
def test_down_twice_leaves_nothing_and_up_restores(lab_alone, figures):
    cgroups_before = set(cgroups_named(("machine", "qemu", "kae")))
    start = time.monotonic()
    first = lab_alone.cli("down")
    figures.append(("lab down (s)", round(time.monotonic() - start, 2)))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "lab down in" in first.stdout
    assert_nothing_left(lab_alone.kaelab)
    assert set(cgroups_named(("machine", "qemu", "kae"))) <= cgroups_before
    second = lab_alone.cli("down")
    assert second.returncode == 0 and "already down" in second.stdout
    assert lab_alone.cli("status").returncode != 0
    lab_up(lab_alone, figures, "lab up from down, images cached (s)")
    assert lab_alone.cli("status").returncode == 0


@pytest.mark.lab_teardown
def test_down_after_killed_up(lab_alone, figures):
    assert lab_alone.cli("down").returncode == 0
    kaelab = lab_alone.kaelab
    second_host = kaelab.HOSTS[1]
    proc = subprocess.Popen([sys.executable, str(lab_alone.cli_path), "up"],  # pylint: disable=consider-using-with
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Kill it mid-way: the first host is complete, the second one is being built.
        wait_until("the second host's namespaces", lambda: kaelab.init_pid(second_host) is not None, 60)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert kaelab.lab_health()["anything"]
    down = lab_alone.cli("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert_nothing_left(kaelab)
    lab_up(lab_alone, figures, "lab up after killed up and down (s)")
