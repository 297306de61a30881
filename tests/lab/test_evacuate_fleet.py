# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/kae_evacuate.yml in a fleet: the lab grown to 3 hosts and 5 light guests beside kae-guest, every light
guest given its own simulated VFs by the guest role, then kae-lab-c evacuated of its KAE guests (kae-fleet-2 and
kae-fleet-5; kae-guest, on kae-lab-a or kae-lab-b, is left as the other lab tests expect it).

- The evacuation: every guest of the drained host runs on exactly one other host afterwards, its simulated holdings
  (``<metadata><kae:vfs>``, read as device_info reads them) are the VFs the plan chose there and no VF is held by two
  domains anywhere; each moved guest's heartbeat goes on in its destination's serial log; the report has a row per
  guest with a positive downtime; a second run changes nothing.
- A destination whose libvirtd is killed once the migrations start: the guests bound elsewhere arrive, the guest
  bound there still runs on its source alone, and the run fails at the end with that guest's failure recorded.

Each test grows the lab at its start and shrinks it back to the default lab in the ``fleet_lab`` fixture's teardown,
also when it fails; the whole test holds the machine-wide lab test lock (see tests/lab/test_fleet_lab.py).
"""

# pytest fixtures are parameters named like the fixture functions of this module.
# pylint: disable=redefined-outer-name

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import textwrap
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import REPO, VENV_BIN, _ansible_env
from test_evacuate import PLAYBOOK, recap
from test_fleet_lab import GUEST_PLAY, lab_vfs_of, open_conns, running_on, test_lock  # noqa: F401  pylint: disable=unused-import
from test_lab import last_heartbeat, wait_until

FLEET = ("--hosts", "3", "--guests", "5")
SOURCE = "kae-lab-c"    # kaelab.fleet_layout(3, 5): kae-fleet-2 and kae-fleet-5 start there; kae-guest never runs there
LIGHT = ["kae-fleet-%d" % index for index in range(1, 6)]
GUESTS = ["kae-guest"] + LIGHT
# Light guests of 1 vCPU on hosts of 2 CPUs: the lab's overcommit, so that every host can take a guest.
CPU_RATIO = 4
PLAN_LINE = re.compile(r"batch \d+: (\S+): (\S+) -> (\S+), VFs (\S+) -> (\S+?)[\",]*$", re.M)
MODULE_BOUND_S = 300


@pytest.fixture
def fleet_lab(lab, test_lock, figures):
    """The lab grown to 3 hosts and 5 light guests; afterwards, whatever happened, the default lab again."""
    start = time.monotonic()
    up = lab.cli("up", *FLEET)
    figures.append(("fleet lab up from the default lab, 3 hosts + 5 guests (s)", round(time.monotonic() - start, 1)))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield dataclasses.replace(lab, hosts=dict(lab.hosts, **{"kae-lab-c": lab.kaelab.lab_host(2).addr}))
    finally:
        back = lab.cli("up")
        assert back.returncode == 0, back.stdout + back.stderr
    status = lab.cli("status")
    assert status.returncode == 0 and "layout: 2 hosts, 0 extra guests" in status.stdout, status.stdout


def where(conns):
    """{guest: [hosts where it runs]} for every guest of the fleet."""
    return dict((guest, running_on(conns, guest)) for guest in GUESTS)


def give_guests_vfs(fleet_lab, ansible_playbook, tmp_path, conns):
    """The guest role on every host for the light guests running there: each gets one VF of each engine in its
    <kae:vfs> and the QEMU trace arguments the downtime is read from; those on SOURCE restart (powered off at once) so
    that QEMU prints them. Returns {guest: [host]} once every guest beats."""
    placed = where(conns)
    assert all(len(hosts) == 1 for hosts in placed.values()), placed
    domains = {}
    for guest in LIGHT:
        host = placed[guest][0]
        domains.setdefault(host, []).append({"name": guest, "restart": host == SOURCE})
    (tmp_path / "guests.yml").write_text(textwrap.dedent(GUEST_PLAY))
    (tmp_path / "domains.json").write_text(json.dumps({"fleet_domains": domains, "guest_restart_timeout_s": 0}))
    done = ansible_playbook(str(tmp_path / "guests.yml"), "-e", "@%s" % (tmp_path / "domains.json"))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
    assert set(re.findall(r"^(kae-lab-[a-z])\s+: ok=", done.stdout, re.M)) == set(fleet_lab.hosts), done.stdout[-3000:]
    # Taken once the role is done: a heartbeat past it comes from the guest as it runs now.
    offsets = dict((guest, (serial_of(fleet_lab, guest, host), serial_of(fleet_lab, guest, host).stat().st_size))
                   for guest, (host,) in placed.items())
    for guest, (serial, offset) in offsets.items():
        wait_until("a heartbeat of %s after the guest role" % guest, lambda s=serial, o=offset: beats_after(s, o), timeout=120)
    return placed


def beats_after(serial, offset):
    """True when SERIAL holds a heartbeat past OFFSET (a restarted guest beats again from seq 1)."""
    with open(serial, "rb") as handle:
        handle.seek(offset)
        return b"kae-heartbeat" in handle.read()


def evacuation_args(reports, run_id, *extra):
    return [PLAYBOOK, "-e", "kae_evacuate_host=%s" % SOURCE, "-e", "kae_evacuate_cpu_ratio=%d" % CPU_RATIO,
            "-e", "kae_evacuate_report_dir=%s" % reports, "-e", "kae_evacuate_report_run_id=%s" % run_id] + list(extra)


def holdings(conns):
    """{host: {domain: set of VFs}}: the <kae:vfs> of every domain of every host, running and defined, as device_info
    reads the lab's holdings."""
    found = {}
    for host, conn in conns.items():
        for dom in conn.listAllDomains():
            live, defined = lab_vfs_of(conn, dom.name())
            found.setdefault(host, {})[dom.name()] = set(live) | set(defined)
    return found


def assert_no_vf_twice(conns):
    for host, domains in holdings(conns).items():
        owners = {}
        for name, vfs in domains.items():
            for bdf in vfs:
                owners.setdefault(bdf, []).append(name)
        twice = dict((bdf, names) for bdf, names in owners.items() if len(names) > 1)
        assert not twice, "VFs held by two domains on %s: %s" % (host, twice)


def serial_of(fleet_lab, guest, host):
    """GUEST's serial log on HOST, as the controller sees it."""
    return fleet_lab.kaelab.STATE / "hosts" / host / "log-libvirt" / "qemu" / ("%s-serial.log" % guest)


def heartbeats(fleet_lab, guests):
    """{guest: last heartbeat seq} of GUESTS ({guest: host}) on their hosts."""
    return dict((guest, last_heartbeat(serial_of(fleet_lab, guest, host))[0]) for guest, host in guests.items())


def planned(output):
    """{guest: (source, destination, planned VFs)} from the plan the playbook printed."""
    return dict((guest, (source, destination, sorted(vfs.split(",")) if vfs != "none" else []))
                for guest, source, destination, _before, vfs in PLAN_LINE.findall(output))


def test_evacuating_a_fleet_host_moves_each_guest_once_with_its_vfs(fleet_lab, ansible_playbook, tmp_path, figures):
    fleet = fleet_lab
    reports = tmp_path / "reports"
    conns = open_conns(fleet, fleet.hosts)
    try:
        before = give_guests_vfs(fleet, ansible_playbook, tmp_path, conns)
        leaving = sorted(guest for guest, hosts in before.items() if hosts == [SOURCE])
        assert len(leaving) >= 2, before
        held_before = holdings(conns)
        assert all(held_before[SOURCE][guest] for guest in leaving), held_before[SOURCE]
        since = heartbeats(fleet, dict((guest, SOURCE) for guest in leaving))

        start = time.monotonic()
        done = ansible_playbook(*evacuation_args(reports, "first"))
        figures.append(("fleet evacuation of %d guests, whole playbook (s)" % len(leaving), round(time.monotonic() - start, 1)))
        assert done.returncode == 0, done.stdout[-6000:]
        plan = planned(done.stdout)
        assert sorted(plan) == leaving, done.stdout[-4000:]

        after = where(conns)
        for guest in GUESTS:
            assert len(after[guest]) == 1, after
            if guest in leaving:
                assert after[guest] == [plan[guest][1]] and after[guest] != [SOURCE], (guest, after, plan)
            else:
                assert after[guest] == before[guest], (guest, before, after)
        assert len({plan[guest][1] for guest in leaving}) == 2, plan   # spread over both other hosts

        # The simulated holdings followed each guest: on its destination it holds the VFs the plan chose there.
        held = holdings(conns)
        for guest in leaving:
            destination, vfs = plan[guest][1], plan[guest][2]
            assert len(vfs) == 3 and sorted(held[destination][guest]) == vfs, (guest, held[destination], plan[guest])
        assert_no_vf_twice(conns)

        for guest in leaving:
            destination = after[guest][0]
            wait_until("heartbeats of %s on %s after seq %d" % (guest, destination, since[guest]),
                       lambda g=guest, d=destination: last_heartbeat(serial_of(fleet, g, d))[0] > since[g] + 2, timeout=30)

        report = json.loads((reports / "first" / "report.json").read_text())
        rows = dict((row["guest"], row) for row in report["evacuation"]["guests"])
        assert sorted(rows) == leaving
        for guest, row in rows.items():
            assert (row["source"], row["destination"], row["status"]) == (SOURCE, plan[guest][1], "passed"), row
            assert row["downtime_ms"] > 0 and row["duration_s"] > 0, row
        figures.append(("fleet evacuation: downtime per guest, trace (ms)", dict((g, r["downtime_ms"]) for g, r in rows.items())))
        figures.append(("fleet evacuation: migrations at once", report["evacuation"]["max_concurrent"]))

        again = ansible_playbook(*evacuation_args(reports, "second"))
        assert again.returncode == 0, again.stdout[-4000:]
        assert all(counts["changed"] == 0 for counts in recap(again.stdout).values()), again.stdout[-3000:]
        assert "%s runs no guest to move" % SOURCE in again.stdout
        assert not (reports / "second").exists()
        assert where(conns) == after and holdings(conns) == held
    finally:
        for conn in conns.values():
            conn.close()


def start_evacuation(reports):
    """The evacuation in the background, its output unbuffered so that the test sees each play start."""
    env = dict(_ansible_env(), PYTHONUNBUFFERED="1")
    argv = [str(VENV_BIN / "ansible-playbook")] + evacuation_args(reports, "fault")
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                            stderr=subprocess.STDOUT, text=True)


def read_until_migrations(evacuation, deadline_s):
    """The playbook's output up to the start of the migrations play (the plan is printed before it)."""
    lines = []
    deadline = time.monotonic() + deadline_s
    for line in evacuation.stdout:
        lines.append(line)
        if line.startswith("PLAY [Migrate the guests"):
            return "".join(lines)
        assert time.monotonic() < deadline, "no migration started within %s s:\n%s" % (deadline_s, "".join(lines)[-4000:])
    raise AssertionError("the evacuation ended before its migrations:\n%s" % "".join(lines)[-4000:])


def finish(evacuation, output):
    try:
        rest = evacuation.communicate(timeout=MODULE_BOUND_S)[0]
    except subprocess.TimeoutExpired:
        evacuation.kill()
        rest = evacuation.communicate()[0]
        raise AssertionError("the evacuation did not end within %s s of the fault:\n%s" % (MODULE_BOUND_S, (output + rest)[-4000:])) from None
    return output + rest


def test_a_destination_failing_mid_evacuation_leaves_its_guest_on_the_source(fleet_lab, ansible_playbook, tmp_path, figures):
    fleet = fleet_lab
    reports = tmp_path / "reports"
    conns = open_conns(fleet, fleet.hosts)
    try:
        before = give_guests_vfs(fleet, ansible_playbook, tmp_path, conns)
    finally:
        for conn in conns.values():
            conn.close()
    leaving = sorted(guest for guest, hosts in before.items() if hosts == [SOURCE])
    evacuation = start_evacuation(reports)
    failed_host = None
    try:
        output = read_until_migrations(evacuation, MODULE_BOUND_S)
        plan = planned(output)
        assert sorted(plan) == leaving, output[-4000:]
        # The destination of the first guest in name order fails; the plan spreads the others over both hosts.
        failed_host = plan[leaving[0]][1]
        assert fleet.kaelab.stop_daemon(fleet.kaelab.lab_host(ord(failed_host[-1]) - ord("a")), "libvirtd")
        start = time.monotonic()
        output = finish(evacuation, output)
        figures.append(("fleet evacuation, destination libvirtd killed: the run ended after the fault (s)",
                        round(time.monotonic() - start, 1)))
    finally:
        if evacuation.poll() is None:
            evacuation.kill()
            evacuation.communicate()
        repair = fleet.cli("up", *FLEET)
        assert repair.returncode == 0, repair.stdout + repair.stderr
    assert evacuation.returncode != 0, output[-4000:]
    bound_there = sorted(guest for guest in leaving if plan[guest][1] == failed_host)
    elsewhere = sorted(guest for guest in leaving if plan[guest][1] != failed_host)
    assert bound_there and elsewhere, plan

    report = json.loads((reports / "fault" / "report.json").read_text())
    rows = dict((row["guest"], row) for row in report["evacuation"]["guests"])
    assert sorted(rows) == leaving
    for guest in elsewhere:
        assert (rows[guest]["destination"], rows[guest]["status"]) == (plan[guest][1], "passed"), rows[guest]
    for guest in bound_there:
        assert rows[guest]["status"] in ("error", "failed") and rows[guest]["message"], rows[guest]
    figures.append(("fleet evacuation, destination libvirtd killed: the failed guest's record",
                    dict((guest, rows[guest]["message"][:300]) for guest in bound_there)))
    assert recap(output)["localhost"]["failed"] == 1

    conns = open_conns(fleet, fleet.hosts)
    try:
        # The restarted libvirtd on the failed host ends any incoming QEMU it finds; the guest runs on its source alone.
        wait_until("the failed guests to run on %s alone" % SOURCE,
                   lambda: all(running_on(conns, guest) == [SOURCE] for guest in bound_there), timeout=60)
        for guest in elsewhere:
            assert running_on(conns, guest) == [plan[guest][1]]
        assert_no_vf_twice(conns)
        since = heartbeats(fleet, dict((guest, SOURCE) for guest in bound_there))
        for guest in bound_there:
            wait_until("heartbeats of %s on %s" % (guest, SOURCE),
                       lambda g=guest: last_heartbeat(serial_of(fleet, g, SOURCE))[0] > since[g] + 2, timeout=30)
    finally:
        for conn in conns.values():
            conn.close()
    # The job's JUnit: one test case per guest, the one bound to the failed host failing.
    cases = dict((case.get("name"), case) for case in ET.parse(str(reports / "fault" / "junit.xml")).getroot().iter("testcase"))
    for guest in leaving:
        failing = [child.tag for child in cases["guest %s: %s -> %s" % (guest, SOURCE, plan[guest][1])] if child.tag in ("failure", "error")]
        assert bool(failing) is (guest in bound_there), (guest, failing)
