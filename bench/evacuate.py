# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Benchmark: evacuating a lab host of N guests with at most T migrations at once, against N x one migration.

With ``--fleet N`` it first grows the lab to 3 hosts and N light guests (``kaelab.py up --hosts 3 --guests N``), gives
every light guest its own simulated VFs (the guest role on each host) and gathers the light guests on HOST (kae-lab-c by
default), each migration mapping the guest's VFs to free ones there (not timed); afterwards it shrinks the lab back
to the default, also when a step failed. Without it, it evacuates the host running the lab guest in the lab as it is.

Holding the lab tests' lock so that no test moves a guest meanwhile, for each T (1, then 2):

1. ``ansible-playbook playbooks/kae_evacuate.yml -e kae_evacuate_host=HOST`` moving every guest of HOST
   (``kae_evacuate_all_guests``), with T as the per-source limit (the per-destination and total limits at least T);
2. the fleet report's figures: each migration's start and duration, so the fixed phases (playbook start to the
   first migration's start: reading the hypervisors and planning) are printed apart from the migrations' span;
3. every guest migrated back to HOST with ``openeuler.kae.live_migration`` (not timed), its VFs mapped to free ones.

It prints, per T, each guest's migration (destination, start after the first migration's start, duration, trace
downtime), then the whole time, the fixed phases, the migrations' span, the phases after the last migration (the
report), N x the median single migration of the same run, and the goal 1.2 x ceil(N/T) x single + fixed against the
time up to the last migration's end. A measurement, not a test: nothing passes or
fails. With fewer than 4 guests on HOST (the default two-host lab has one) the figures say nothing about
concurrency, and it says so; ``lab/kaelab.py up --hosts 3 --guests M`` gives a host more.

    .venv/bin/python bench/evacuate.py [--fleet N] [--host HOST] [--limits 1,2] [--lock-held]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lab"))
import kaelab  # noqa: E402  pylint: disable=wrong-import-position

LOCK = "/run/lock/kae-lab-tests.lock"
PLAYBOOK = ROOT / "playbooks" / "kae_evacuate.yml"
VENV_BIN = ROOT / ".venv" / "bin"


def guest_host():
    """The lab host whose libvirt runs the lab guest (kae-guest)."""
    running = [host.name for host in kaelab.HOSTS if kaelab.guest_state(kaelab.init_pid(host)) == "running"]
    if len(running) != 1:
        sys.exit("the lab guest must run on exactly one host, it runs on %s; run lab/kaelab.py up" % running)
    return running[0]


def ansible_env():
    return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))


FLEET_HOSTS = 3
FLEET_HOST = "kae-lab-c"
# Light guests of 1 vCPU on hosts of 2 CPUs: the lab's overcommit, so that the plan finds room for them.
CPU_RATIO = 4

GUEST_PLAY = """
- name: Give every light guest its own simulated VFs
  hosts: kae_hypervisors
  gather_facts: false
  roles:
    - role: openeuler.kae.guest
      vars:
        guest_domains: "{{ bench_domains[inventory_hostname] | default([]) }}"
"""

MOVE_PLAY = """
- name: Read every lab host's KAE devices
  hosts: kae_hypervisors
  gather_facts: false
  tasks:
    - name: Read the devices
      openeuler.kae.device_info:
        sysfs_root: "{{ kae_sysfs_root }}"
      register: bench_devices

    - name: Move the guests of this host, one at a time in the whole lab, their VFs mapped to free VFs of the destination
      openeuler.kae.live_migration:
        domain: "{{ item.guest }}"
        destination_uri: "qemu+ssh://{{ item.destination }}/system"
        migrate_uri: "tcp://{{ item.destination }}"
        source_sysfs_root: "{{ kae_sysfs_root }}"
        destination_devices: "{{ hostvars[item.destination].bench_devices.devices }}"
      loop: "{{ bench_moves | selectattr('source', 'eq', inventory_hostname) | list }}"
      throttle: 1
"""


def playbook(text, extra, work, name):
    """Run the play TEXT with the extra vars EXTRA (a dict) against the lab inventory; exits with its output when it failed."""
    path = Path(work) / ("%s.yml" % name)
    path.write_text(text)
    (Path(work) / ("%s.json" % name)).write_text(json.dumps(extra))
    done = subprocess.run([str(VENV_BIN / "ansible-playbook"), str(path), "-e", "@%s" % (Path(work) / ("%s.json" % name))],
                          cwd=str(ROOT), env=ansible_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (name, done.stdout[-4000:]))


def placement():
    """{guest: host} of every running domain of the lab (asked inside each host)."""
    where = {}
    for host in kaelab.recorded_layout().hosts:
        for name, state in kaelab.domain_states(kaelab.init_pid(host)).items():
            if state == "running":
                where[name] = host.name
    return where


def wait_for_heartbeats(guests):
    """Wait (at most 120 s) until every guest of GUESTS ({name: host}) writes a heartbeat to its serial log again."""
    serials = dict((name, kaelab.STATE / "hosts" / host / "log-libvirt" / "qemu" / ("%s-serial.log" % name)) for name, host in guests.items())
    offsets = dict((name, path.stat().st_size) for name, path in serials.items())
    deadline = time.monotonic() + 120
    for name, path in serials.items():
        while b"kae-heartbeat" not in path.read_bytes()[offsets[name]:]:
            if time.monotonic() > deadline:
                raise RuntimeError("%s wrote no heartbeat within 120 s of its restart (%s)" % (name, path))
            time.sleep(0.2)


def move(moves, work):
    """MOVES ([{guest, source, destination}]) one after the other, each guest's VFs mapped to free VFs of its destination."""
    if moves:
        playbook(MOVE_PLAY, {"bench_moves": moves}, work, "move")


def grow(guests, host, work):
    """The fleet lab of GUESTS light guests, each guest with its own VFs, the light guests gathered on HOST."""
    up = subprocess.run([sys.executable, str(ROOT / "lab" / "kaelab.py"), "up", "--hosts", str(FLEET_HOSTS), "--guests", str(guests)],
                        capture_output=True, text=True, check=False)
    if up.returncode != 0:
        raise RuntimeError("lab up --hosts %d --guests %d failed:\n%s%s" % (FLEET_HOSTS, guests, up.stdout, up.stderr))
    domains = {}
    light = dict((name, where) for name, where in placement().items() if name.startswith(kaelab.FLEET_PREFIX))
    for name, where in light.items():   # kae-guest keeps what it holds in the default lab
        domains.setdefault(where, []).append({"name": name, "restart": True})
    # Restarted (powered off at once) so that QEMU prints the trace arguments the downtime is read from.
    playbook(GUEST_PLAY, {"bench_domains": domains, "guest_restart_timeout_s": 0}, work, "guests")
    wait_for_heartbeats(light)
    move([{"guest": name, "source": where, "destination": host} for name, where in sorted(placement().items())
          if name.startswith(kaelab.FLEET_PREFIX) and where != host], work)


def shrink():
    """The default lab again (the light guests and the third host removed)."""
    up = subprocess.run([sys.executable, str(ROOT / "lab" / "kaelab.py"), "up"], capture_output=True, text=True, check=False)
    if up.returncode != 0:
        sys.exit("lab up (back to the default lab) failed:\n%s%s" % (up.stdout, up.stderr))


def evacuate(host, limit, report_dir):
    """Run the evacuation with LIMIT migrations at once from HOST; (seconds, report.json data)."""
    argv = [str(VENV_BIN / "ansible-playbook"), str(PLAYBOOK), "-e", "kae_evacuate_host=%s" % host, "-e", "kae_evacuate_all_guests=true",
            "-e", "kae_evacuate_max_per_source=%d" % limit, "-e", "kae_evacuate_max_per_destination=%d" % limit,
            "-e", "kae_evacuate_max_parallel=%d" % max(limit, 5), "-e", "kae_evacuate_report_dir=%s" % report_dir,
            "-e", "kae_evacuate_report_run_id=limit-%d" % limit, "-e", "kae_evacuate_cpu_ratio=%d" % CPU_RATIO, "-f", str(max(limit, 5))]
    started = time.time()
    done = subprocess.run(argv, cwd=str(ROOT), env=ansible_env(), capture_output=True, text=True, check=False)
    elapsed = time.time() - started
    if done.returncode != 0:
        sys.exit("the evacuation with T=%d failed:\n%s" % (limit, done.stdout[-4000:]))
    return started, elapsed, json.loads((Path(report_dir) / ("limit-%d" % limit) / "report.json").read_text())


def move_back(host, rounds, work):
    """Every guest of ROUNDS back to HOST, one after the other (not timed)."""
    move([{"guest": item["guest"], "source": item["destination"], "destination": host} for item in rounds], work)


def figures(limit, started, elapsed, report):
    rounds = report["rounds"]
    starts = [item["started_at"] for item in rounds]
    ends = [item["started_at"] + item["duration_s"] for item in rounds]
    single = statistics.median(item["duration_s"] for item in rounds)
    fixed = min(starts) - started
    count = len(rounds)
    span = max(ends) - min(starts)
    first = min(starts)
    guests = [(item["guest"], item["destination"], item["started_at"] - first, item["duration_s"], item.get("downtime_ms"))
              for item in sorted(rounds, key=lambda item: item["started_at"])]
    return {"T": limit, "N": count, "guests": guests, "step": batch_step(report), "total": elapsed, "fixed": fixed, "span": span,
            "after": elapsed - fixed - span, "single": single, "serial": count * single, "goal": 1.2 * math.ceil(count / float(limit)) * single + fixed,
            "at_once": report["evacuation"]["max_concurrent"]}


def batch_step(report):
    """Median time from one batch's first migration start to the next one's (None with one batch): at T = 1, one whole
    migration unit (its checks, clock measurement, log marks and trace reads around the migration call)."""
    batches = {}
    for row, item in zip(report["evacuation"]["guests"], report["rounds"]):
        batches.setdefault(row["batch"], []).append(item["started_at"])
    starts = sorted(min(values) for values in batches.values())
    return statistics.median(b - a for a, b in zip(starts, starts[1:])) if len(starts) > 1 else None


def show_units(rows):
    """Each T against N x one whole migration unit (T = 1's batch-to-batch time), side by side."""
    unit = next((row["step"] for row in rows if row["T"] == 1 and row["step"]), None)
    if unit is None:
        return
    print("One whole migration unit (T=1, batch to batch): %.1f s" % unit)
    for row in rows:
        done = row["total"] - row["after"]
        goal = 1.2 * math.ceil(row["N"] / float(row["T"])) * unit + row["fixed"]
        step = "-" if row["step"] is None else "%.1f" % row["step"]
        print("    T=%d: up to the last migration's end %.1f s against N x unit + fixed = %.1f s; 1.2 x ceil(N/T) x unit + fixed = %.1f s "
              "(%s); batch to batch %s s" % (row["T"], done, row["N"] * unit + row["fixed"], goal, "within" if done <= goal else "over", step))


def show(rows):
    print("Evacuation of one lab host, every guest moved (seconds, wall clock); load average %.2f %.2f %.2f" % os.getloadavg())
    for row in rows:
        print("T=%d, each migration: guest, destination, start (after the first one's), duration, trace downtime (ms)" % row["T"])
        for guest, destination, start, duration, downtime in row["guests"]:
            print("    %-14s %-10s %6.1f %6.2f %8s" % (guest, destination, start, duration, "-" if downtime is None else "%.1f" % downtime))
    header = ("T", "N", "total", "fixed", "span", "after", "single", "N x single", "goal", "at once")
    print("%3s %3s %8s %8s %8s %8s %8s %10s %8s %8s" % header)
    for row in rows:
        values = (row["T"], row["N"], row["total"], row["fixed"], row["span"], row["after"], row["single"], row["serial"], row["goal"],
                  row["at_once"])
        print("%3d %3d %8.1f %8.1f %8.1f %8.1f %8.2f %10.1f %8.1f %8d" % values)
        # The goal counts the phases before the first migration as fixed; the report after the last one is fixed too.
        verdict = "within" if row["total"] - row["after"] <= row["goal"] else "over"
        print("    T=%d: up to the last migration's end %.1f s, %s the goal 1.2 x ceil(N/T) x single + fixed = %.1f s; the report "
              "after it %.1f s" % (row["T"], row["total"] - row["after"], verdict, row["goal"], row["after"]))
    show_units(rows)
    if rows and rows[0]["N"] < 4:
        print("only %d guest(s) on the host: these figures say nothing about concurrency (lab/kaelab.py up --hosts 3 --guests M)" % rows[0]["N"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--fleet", type=int, metavar="N", help="grow the lab to %d hosts and N light guests, gathered on HOST, and "
                        "shrink it back afterwards (N >= 4 for figures about concurrency)" % FLEET_HOSTS)
    parser.add_argument("--host", help="the lab host to evacuate (default: %s with --fleet, else the one running the lab guest)" % FLEET_HOST)
    parser.add_argument("--limits", default="1,2", help="the values of T, comma-separated (default 1,2)")
    parser.add_argument("--lock-held", action="store_true", help="the caller already holds the lab tests' lock (flock %s ...)" % LOCK)
    args = parser.parse_args(argv)
    # A SIGTERM (timeout, a CI job cancelled) still shrinks the lab back: the finally below runs.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit("bench/evacuate.py: terminated"))
    limits = [int(value) for value in args.limits.split(",")]
    rows = []
    with open(LOCK, "a", encoding="utf-8") as lock, tempfile.TemporaryDirectory(prefix="kae-bench-evacuate.") as work:
        if not args.lock_held:
            fcntl.flock(lock, fcntl.LOCK_EX)
        host = args.host or (FLEET_HOST if args.fleet else guest_host())
        try:
            if args.fleet:
                grow(args.fleet, host, work)
            for limit in limits:
                started, elapsed, report = evacuate(host, limit, work)
                rows.append(figures(limit, started, elapsed, report))
                move_back(host, report["rounds"], work)
        finally:
            if args.fleet:
                shrink()
    show(rows)


if __name__ == "__main__":
    main()
