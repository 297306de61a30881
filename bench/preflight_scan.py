# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Benchmark: the pre-flight's trace-arrival scan on a 1 MiB and a 1 GiB QEMU log.

The scan (openeuler.kae.migratability_info's reading function) reads the log backwards from its end until an
event of the profile, libvirt's start line of the current QEMU process, or its byte budget. Three tails are
measured on both logs: the current process's event is there (the usual "go"), only its start line is there
(a refusal), and neither is within the budget (the worst case: the scan stops after max_bytes). It prints
the median time of each and the ratio 1 GiB / 1 MiB. A measurement, not a test: nothing passes or fails on
time. The logs are written to a temporary directory and deleted afterwards.

    .venv/bin/python bench/preflight_scan.py [--repeat N] [--dir DIR] [--big-mib N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024
MAX_BYTES = 16 * MIB  # the module's default budget
NAMES = ["all_vcpus_paused", "all_vcpus_prepared", "vm_state_notify"]  # profile auto

START = ("2026-12-02 15:21:42.185+0000: starting up libvirt version: 9.0.0, package: 9.0.0-4+deb12u2 (Debian), "
         "qemu version: 7.2.22, kernel: 6.18.44, hostname: kae-lab-a\n"
         "/usr/bin/qemu-system-x86_64 \\\n-name guest=kae-guest,debug-threads=on \\\n--trace vm_state_notify \\\n-msg timestamp=on\n"
         "2026-12-02 15:21:42.190+0000: Domain id=7 is tainted: custom-argv\n")
RESUMED = "76@1796224884.449519:vm_state_notify running 1 reason 9 (running)\n"
# Events of no profile (what other --trace patterns or a long-running process leave in the log).
FILLER_LINE = "219@1795629893.032000:migration_bitmap_sync_end dirty_pages 500\n"
TAILS = (
    ("event", START + RESUMED + "2026-12-02 15:22:00.001+0000: Domain id=7 is tainted: custom-monitor\n"),
    ("start only", START + FILLER_LINE * 20),
    ("neither", FILLER_LINE * 20),
)


def write_filler(path, size):
    block = (FILLER_LINE * (4 * MIB // len(FILLER_LINE))).encode()
    with open(path, "wb") as handle:
        while handle.tell() + len(block) <= size:
            handle.write(block)
        handle.write(FILLER_LINE.encode() * ((size - handle.tell()) // len(FILLER_LINE)))
        return handle.tell()


def set_tail(path, filler_size, tail):
    with open(path, "r+b") as handle:
        handle.truncate(filler_size)
        handle.seek(filler_size)
        handle.write(tail.encode())


def _import_scan(workdir):
    """scan_current_process from this checkout, importable whatever the caller's sys.path."""
    tree = os.path.join(workdir, "collections", "ansible_collections", "openeuler")
    os.makedirs(tree)
    os.symlink(ROOT, os.path.join(tree, "kae"))
    sys.path.insert(0, os.path.join(workdir, "collections"))
    from ansible_collections.openeuler.kae.plugins.module_utils._preflight import scan_current_process
    return scan_current_process


def main():
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=21, help="scans per log and tail; the median is printed (default 21)")
    parser.add_argument("--dir", default=None, help="where to write the two logs (default: a new temporary directory)")
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the big log in MiB (default 1024)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="kae-bench-", dir=args.dir)
    try:
        scan = _import_scan(workdir)
        logs = []
        for label, size in (("1 MiB", MIB), ("%d MiB" % args.big_mib, args.big_mib * MIB)):
            path = os.path.join(workdir, "kae-guest-%d.log" % size)
            logs.append({"label": label, "path": path, "filler": write_filler(path, size)})
        os.sync()
        rows = []
        for tail_label, tail in TAILS:
            for log in logs:
                set_tail(log["path"], log["filler"], tail)
            rows.append((tail_label, measure(scan, logs, args.repeat)))
        print_table(logs, rows, args.repeat)
        return check(rows)
    finally:
        shutil.rmtree(workdir)


def measure(scan, logs, repeat):
    """[(median seconds, result)] per log, runs interleaved so that machine noise hits both alike."""
    timings = [[] for _log in logs]
    results = [None for _log in logs]
    for _round in range(repeat):
        for index, log in enumerate(logs):
            started = time.perf_counter()
            results[index] = scan(log["path"], NAMES, MAX_BYTES)
            timings[index].append(time.perf_counter() - started)
    return [(statistics.median(times), result) for times, result in zip(timings, results)]


def print_table(logs, rows, repeat):
    print("Trace-arrival scan backwards from the end of the log (budget %d MiB), median of %d interleaved runs:" % (MAX_BYTES // MIB, repeat))
    print("%-11s %-9s %12s %14s %10s" % ("tail", "log", "bytes read", "median (ms)", "found"))
    for tail_label, measured in rows:
        for log, (seconds, result) in zip(logs, measured):
            print("%-11s %-9s %12d %14.3f %10s" % (tail_label, log["label"], result["bytes_read"], seconds * 1000, verdict(result)))
        print("%-11s ratio %s / %s: %.2f" % ("", logs[1]["label"], logs[0]["label"], measured[1][0] / measured[0][0]))


def verdict(result):
    return "event" if result["event"] else ("start" if result["complete"] else "none")


def check(rows):
    """Each tail must give its verdict on both logs, or the figures compare different work."""
    expected = {"event": "event", "start only": "start", "neither": "none"}
    for tail_label, measured in rows:
        for _seconds, result in measured:
            if verdict(result) != expected[tail_label]:
                print("ERROR: tail %r gave %r: %r" % (tail_label, verdict(result), result), file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
