# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Benchmark: evacuating a lab host of N guests with at most T migrations at once, against N x one migration.

Holding the lab tests' lock so that no test moves a guest meanwhile, for each T (1, then 2):

1. ``ansible-playbook playbooks/kae_evacuate.yml -e kae_evacuate_host=HOST`` moving every guest of HOST
   (``kae_evacuate_all_guests``), with T as the per-source limit (the per-destination and total limits at least T);
2. the fleet report's figures: each migration's start and duration, so the fixed phases (playbook start to the
   first migration's start: reading the hypervisors and planning) are printed apart from the migrations' span;
3. every guest migrated back to HOST with ``openeuler.kae.live_migration`` (not timed), for the next T.

It prints, per T, the whole time, the fixed phases, the migrations' span, the phases after the last migration (the
report), N x the median single migration of the same run, and the goal 1.2 x ceil(N/T) x single + fixed against the
time up to the last migration's end. A measurement, not a test: nothing passes or
fails. With fewer than 4 guests on HOST (the default two-host lab has one) the figures say nothing about
concurrency, and it says so; ``lab/kaelab.py up --hosts 3 --guests M`` gives a host more.

    .venv/bin/python bench/evacuate.py [--host HOST] [--limits 1,2] [--lock-held]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
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


def evacuate(host, limit, report_dir):
    """Run the evacuation with LIMIT migrations at once from HOST; (seconds, report.json data)."""
    argv = [str(VENV_BIN / "ansible-playbook"), str(PLAYBOOK), "-e", "kae_evacuate_host=%s" % host, "-e", "kae_evacuate_all_guests=true",
            "-e", "kae_evacuate_max_per_source=%d" % limit, "-e", "kae_evacuate_max_per_destination=%d" % limit,
            "-e", "kae_evacuate_max_parallel=%d" % max(limit, 5), "-e", "kae_evacuate_report_dir=%s" % report_dir,
            "-e", "kae_evacuate_report_run_id=limit-%d" % limit, "-f", str(max(limit, 5))]
    started = time.time()
    done = subprocess.run(argv, cwd=str(ROOT), env=ansible_env(), capture_output=True, text=True, check=False)
    elapsed = time.time() - started
    if done.returncode != 0:
        sys.exit("the evacuation with T=%d failed:\n%s" % (limit, done.stdout[-4000:]))
    return started, elapsed, json.loads((Path(report_dir) / ("limit-%d" % limit) / "report.json").read_text())


def move_back(host, rounds):
    """Every guest of ROUNDS back to HOST, one after the other (not timed)."""
    for item in rounds:
        args = "domain=%s destination_uri=qemu+ssh://%s/system migrate_uri=tcp://%s" % (item["guest"], host, host)
        done = subprocess.run([str(VENV_BIN / "ansible"), item["destination"], "-m", "openeuler.kae.live_migration", "-a", args],
                              cwd=str(ROOT), env=ansible_env(), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit("cannot move %s back to %s:\n%s" % (item["guest"], host, done.stdout[-3000:]))


def figures(limit, started, elapsed, report):
    rounds = report["rounds"]
    starts = [item["started_at"] for item in rounds]
    ends = [item["started_at"] + item["duration_s"] for item in rounds]
    single = statistics.median(item["duration_s"] for item in rounds)
    fixed = min(starts) - started
    count = len(rounds)
    span = max(ends) - min(starts)
    return {"T": limit, "N": count, "total": elapsed, "fixed": fixed, "span": span, "after": elapsed - fixed - span, "single": single,
            "serial": count * single, "goal": 1.2 * math.ceil(count / float(limit)) * single + fixed,
            "at_once": report["evacuation"]["max_concurrent"]}


def show(rows):
    print("Evacuation of one lab host, every guest moved (seconds, wall clock); load average %.2f %.2f %.2f" % os.getloadavg())
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
    if rows and rows[0]["N"] < 4:
        print("only %d guest(s) on the host: these figures say nothing about concurrency (lab/kaelab.py up --hosts 3 --guests M)" % rows[0]["N"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--host", help="the lab host to evacuate (default: the one running the lab guest)")
    parser.add_argument("--limits", default="1,2", help="the values of T, comma-separated (default 1,2)")
    parser.add_argument("--lock-held", action="store_true", help="the caller already holds the lab tests' lock (flock %s ...)" % LOCK)
    args = parser.parse_args(argv)
    limits = [int(value) for value in args.limits.split(",")]
    rows = []
    with open(LOCK, "a", encoding="utf-8") as lock, tempfile.TemporaryDirectory(prefix="kae-bench-evacuate.") as work:
        if not args.lock_held:
            fcntl.flock(lock, fcntl.LOCK_EX)
        host = args.host or guest_host()
        for limit in limits:
            started, elapsed, report = evacuate(host, limit, work)
            rows.append(figures(limit, started, elapsed, report))
            move_back(host, report["rounds"])
    show(rows)


if __name__ == "__main__":
    main()
