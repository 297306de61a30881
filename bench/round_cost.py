# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Benchmark: what a measured round of playbooks/kae_migrate.yml costs against a bare ``virsh migrate --live``.

In one lab session (it runs lab/kaelab.py up first, which changes nothing on a lab that is up), holding
the lab tests' lock so that no test moves the guest meanwhile:

1. N bare migrations of the lab guest, alternating direction, each ``virsh migrate --live GUEST
   qemu+ssh://DST/system tcp://DST`` run inside the source host as the lab's documentation says
   (``nsenter`` into the host's namespaces, its own libvirtd);
2. one ``ansible-playbook playbooks/kae_migrate.yml`` run of N rounds (host and report phases left out);
   a small callback records when each task starts, and a round lasts from its first task to the next
   round's first task (the last one to the task after the rounds).

It prints each round's time side by side and the ratio of the medians (playbook round / bare migration).
It is a measurement, not a test: nothing passes or fails on time. On a machine shared with other work the
figures move with the load; the load average is printed with them.

    .venv/bin/python bench/round_cost.py [--rounds N] [--without-probes] [--lock-held]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
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
PLAYBOOK = ROOT / "playbooks" / "kae_migrate.yml"
ROUND_START = "Pick the direction, round"
AFTER_ROUNDS = "Say which rounds ran"

# A stdout-neutral callback: one line per task start, "EPOCH<TAB>TASK NAME", into $ROUND_COST_TIMES.
CALLBACK = '''
from __future__ import annotations

import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "round_clock"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_task_start(self, task, is_conditional):
        with open(os.environ["ROUND_COST_TIMES"], "a", encoding="utf-8") as handle:
            handle.write("%.6f\\t%s\\n" % (time.time(), task.get_name()))

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["ROUND_COST_TIMES"], "a", encoding="utf-8") as handle:
            handle.write("%.6f\\t%s\\n" % (time.time(), "(end of the run)"))
'''


def guest_host():
    """The lab host whose libvirt runs the guest."""
    running = [host for host in kaelab.HOSTS if kaelab.guest_state(kaelab.init_pid(host)) == "running"]
    if len(running) != 1:
        sys.exit("the lab guest must run on exactly one host, it runs on %s; run lab/kaelab.py up" % [h.name for h in running])
    return running[0]


def bare_migrations(rounds):
    """Wall time of each bare virsh migrate --live, alternating direction."""
    times = []
    source = guest_host()
    while len(times) < rounds:
        destination = next(host for host in kaelab.HOSTS if host != source)
        started = time.monotonic()
        kaelab.virsh(kaelab.init_pid(source), "migrate", "--live", kaelab.GUEST,
                     "qemu+ssh://%s/system" % destination.name, "tcp://%s" % destination.name)
        times.append(time.monotonic() - started)
        source = destination
    return times


def task_stamps(lines):
    """(start time, task name) of each task; a role's task is "ROLE : NAME", NAME as written (templates not rendered)."""
    return [(float(stamp), name.split(" : ", 1)[-1]) for stamp, name in lines]


def round_bounds(stamps):
    """Start times of each round, then the time the rounds ended."""
    starts = [stamp for stamp, name in stamps if name.startswith(ROUND_START)]
    ends = [stamp for stamp, name in stamps if name == AFTER_ROUNDS]
    if not starts or not ends:
        raise ValueError("the playbook ran no round (no task named %r)" % ROUND_START)
    return starts + [ends[-1]]


def round_times(lines):
    """Each round's time from the task-start log: from one round's first task to the next one's."""
    bounds = round_bounds(task_stamps(lines))
    return [later - earlier for earlier, later in zip(bounds, bounds[1:])]


def task_profile(lines):
    """Per task of the rounds, in order of first run: (name, runs, mean seconds, total seconds); a task lasts until the next starts."""
    stamps = task_stamps(lines)
    bounds = round_bounds(stamps)
    spans = {}
    for (stamp, name), (later, _next) in zip(stamps, stamps[1:]):
        if bounds[0] <= stamp < bounds[-1]:
            # Round numbers in task names are rendered: one row per task, whatever the round.
            spans.setdefault(re.sub(r"round [0-9]+", "round N", name), []).append(later - stamp)
    return [(name, len(times), statistics.mean(times), sum(times)) for name, times in spans.items()]


def load_average():
    """The 1-minute load average, to print beside the figures measured meanwhile."""
    return os.getloadavg()[0]


def playbook_rounds(rounds, workdir, probes=True):
    """Per-round times of one kae_migrate.yml run of ROUNDS rounds, the per-task profile of its rounds and the whole run's time.

    Without PROBES the guest's address is left out, so no round probes it (the lab inventory gives it)."""
    (workdir / "round_clock.py").write_text(CALLBACK)
    times = workdir / "times.tsv"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_CALLBACK_PLUGINS=str(workdir),
               ANSIBLE_CALLBACKS_ENABLED="round_clock", ROUND_COST_TIMES=str(times), ANSIBLE_NOCOLOR="1")
    argv = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(PLAYBOOK), "--skip-tags", "host,report",
            "-e", "migration_rounds=%d" % rounds] + ([] if probes else ["-e", "kae_guest_address="])
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    total = time.monotonic() - started
    if done.returncode != 0:
        sys.exit("kae_migrate.yml failed (rc %d):\n%s" % (done.returncode, done.stdout[-4000:]))
    lines = [line.split("\t", 1) for line in times.read_text().splitlines()]
    return round_times(lines), task_profile(lines), total


def show(bare, rounds, profile, total, loads):
    """Per-round times side by side, the medians and their ratio, the load of each part, then where a round's time goes."""
    print("round  bare virsh migrate (s)  kae_migrate.yml round (s)")
    for number, (one, other) in enumerate(zip(bare, rounds), 1):
        print("%5d  %22.2f  %25.2f" % (number, one, other))
    ratio = statistics.median(rounds) / statistics.median(bare)
    print("median %21.2f  %25.2f" % (statistics.median(bare), statistics.median(rounds)))
    print("ratio of the medians (round / bare): %.2f" % ratio)
    print("load average (1 min) before/after: bare %.2f/%.2f, playbook %.2f/%.2f" % tuple(loads))
    print("whole playbook run: %.1f s (pre-round phases included)" % total)
    print("\nwhere a round's time goes (all rounds; a task lasts until the next one starts):")
    print("%6s %8s %9s  %s" % ("runs", "mean (s)", "total (s)", "task"))
    for name, runs, mean, spent in profile:
        print("%6d %8.2f %9.2f  %s" % (runs, mean, spent, name))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="migrations of each kind (default 4)")
    parser.add_argument("--without-probes", action="store_true",
                        help="leave the guest's address out, so that the rounds send no network probes")
    parser.add_argument("--lock-held", action="store_true",
                        help="the caller already holds the lab tests' lock (flock %s ...)" % LOCK)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if os.geteuid() != 0:
        sys.exit("the lab needs root")
    with open(LOCK, "a", encoding="utf-8") as lock:
        # The lab tests' lock: no test migrates the guest while this runs.
        if not args.lock_held:
            fcntl.flock(lock, fcntl.LOCK_EX)
        # Idempotent: repairs a lab that a test left incomplete, and changes nothing on a lab that is up.
        up = subprocess.run([sys.executable, str(ROOT / "lab" / "kaelab.py"), "up"], capture_output=True, text=True, check=False)
        if up.returncode:
            sys.exit("lab/kaelab.py up failed:\n%s%s" % (up.stdout, up.stderr))
        loads = [load_average()]
        bare = bare_migrations(args.rounds)
        loads.append(load_average())
        print("bare virsh migrate --live (s): %s" % " ".join("%.2f" % value for value in bare), flush=True)
        with tempfile.TemporaryDirectory(prefix="round-cost.") as workdir:
            loads.append(load_average())
            rounds, profile, total = playbook_rounds(args.rounds, Path(workdir), probes=not args.without_probes)
            loads.append(load_average())
    show(bare, rounds, profile, total, loads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
