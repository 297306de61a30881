# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Benchmark: extracting one migration's trace events from a 1 MiB and a 1 GiB QEMU log.

Both logs end with the same tail of migration events; the extraction starts at the offset recorded
before that tail, through the reading function of openeuler.kae.qemu_trace_events. It prints the
median time of each and their ratio. It is a measurement, not a test: nothing passes or fails on
time. The logs are written to a temporary directory and deleted afterwards.

    .venv/bin/python bench/trace_extract.py [--repeat N] [--dir DIR]
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

# What a QEMU log looks like between migrations: libvirt's lines, the command line, and trace
# events of earlier boots and migrations (ram sync chatter, state changes).
BOOT_LINES = (
    "2026-11-25 17:00:00.000+0000: starting up libvirt version: 9.0.0, package: 9.0.0-4 (Debian), qemu version: 7.2.0, "
    "kernel: 6.1.0-27-amd64, hostname: kae-lab-a\n"
    "LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin HOME=/var/lib/libvirt/qemu/domain-1-kae-guest "
    "/usr/bin/qemu-system-x86_64 -name guest=kae-guest,debug-threads=on -S -machine pc-q35-7.2,usb=off -accel tcg "
    "-m 256 -smp 1,sockets=1,cores=1,threads=1 -msg timestamp=on --trace vm_state_notify --trace all_vcpus*\n"
    "char device redirected to /dev/pts/3 (label charserial1)\n"
    "100@1795626000.100000:vm_state_notify running 1 reason 9 (running)\n"
)


def migration_lines(second, wall_clock):
    """One source-side migration as logged: libvirt's lines around the trace events, at epoch SECOND."""
    return (
        "%s.027+0000: initiating migration\n" % wall_clock
        + "219@%d.031141:migration_thread_setup_complete\n" % second
        + "".join("219@%d.%06d:migration_bitmap_sync_end dirty_pages %d\n" % (second, 32000 + step, 500 - step) for step in range(40))
        + "219@%d.037357:runstate_set current_run_state 9 (running) new_state 7 (finish-migrate)\n" % second
        + "219@%d.041251:vm_state_notify running 0 reason 7 (finish-migrate)\n" % second
        + "219@%d.041300:all_vcpus_paused \n" % second
        + "219@%d.041332:migration_completion_vm_stop ret 0\n" % second
        + "219@%d.049619:migrate_set_state new state completed\n" % second
        + "219@%d.049753:runstate_set current_run_state 7 (finish-migrate) new_state 5 (postmigrate)\n" % second
        + "%s.063+0000: shutting down, reason=migrated\n" % wall_clock
    )


# The tail both logs end with: the migration being measured.
TAIL = migration_lines(1795629893, "2026-11-25 18:04:53").encode()


def _block(size):
    """About SIZE bytes of whole log lines: boots and migrations, repeated."""
    unit = (BOOT_LINES + "".join(migration_lines(1795626600 + 60 * index, "2026-11-25 17:10:00") for index in range(4))).encode()
    return unit * max(1, size // len(unit))


def write_log(path, size):
    """Write a log of about SIZE bytes followed by TAIL; return the offset where TAIL starts."""
    block = _block(min(size, 4 * MIB))
    with open(path, "wb") as handle:
        while size - handle.tell() >= len(block):
            handle.write(block)
        handle.write(_block(size - handle.tell()))
        offset = handle.tell()
        handle.write(TAIL)
    return offset


def extract(read_events, log):
    """Seconds taken to extract the events after the log's recorded offset, and the result."""
    started = time.perf_counter()
    result = read_events(log["path"], offset=log["offset"], inode=log["inode"], names=["all_vcpus*", "vm_state_notify"])
    return time.perf_counter() - started, result


def measure(read_events, logs, repeat):
    """Median extraction time of each log, runs interleaved so that machine noise hits all alike."""
    for log in logs:
        log["timings"] = []
    for _round in range(repeat):
        for log in logs:
            seconds, log["result"] = extract(read_events, log)
            log["timings"].append(seconds)
    for log in logs:
        log["median_s"] = statistics.median(log["timings"])


def _import_reader(workdir):
    """read_events from this checkout, importable whatever the caller's sys.path."""
    tree = os.path.join(workdir, "collections", "ansible_collections", "openeuler")
    os.makedirs(tree)
    os.symlink(ROOT, os.path.join(tree, "kae"))
    sys.path.insert(0, os.path.join(workdir, "collections"))
    from ansible_collections.openeuler.kae.plugins.module_utils._logread import read_events
    return read_events


def main():
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=51, help="extractions per log; the median is printed (default 51)")
    parser.add_argument("--dir", default=None, help="where to write the two logs (default: a new temporary directory)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="kae-bench-", dir=args.dir)
    try:
        read_events = _import_reader(workdir)
        logs = []
        for label, size in (("1 MiB", MIB), ("1 GiB", 1024 * MIB)):
            path = os.path.join(workdir, "kae-guest-%s.log" % label.replace(" ", ""))
            started = time.perf_counter()
            offset = write_log(path, size)
            logs.append({"label": label, "path": path, "offset": offset, "inode": os.stat(path).st_ino,
                         "size": os.path.getsize(path), "write_s": time.perf_counter() - started})
        # Let writeback of the fresh gigabyte finish, so it does not run during the measurement.
        os.sync()
        measure(read_events, logs, args.repeat)
        whole_s, _result = extract(read_events, dict(logs[0], offset=0))
        print_table(logs, args.repeat, whole_s)
        return check_same_events(logs)
    finally:
        shutil.rmtree(workdir)


def print_table(logs, repeat, whole_s):
    print("Extracting one migration's trace events (a %d-byte tail) from the recorded offset, median of %d interleaved runs:"
          % (len(TAIL), repeat))
    print("%-6s %14s %14s %8s %14s" % ("log", "size (bytes)", "offset", "events", "median (ms)"))
    for log in logs:
        print("%-6s %14d %14d %8d %14.3f" % (log["label"], log["size"], log["offset"], len(log["result"]["events"]), log["median_s"] * 1000))
    print("ratio 1 GiB / 1 MiB: %.2f" % (logs[1]["median_s"] / logs[0]["median_s"]))
    print("For scale: reading the whole 1 MiB log from offset 0 took %.3f ms; writing the 1 GiB log took %.1f s."
          % (whole_s * 1000, logs[1]["write_s"]))


def check_same_events(logs):
    """Both logs must give the tail's events: a wrong extraction makes the figures meaningless."""
    first, second = logs[0]["result"], logs[1]["result"]
    names = [event["name"] for event in first["events"]]
    if first["events"] != second["events"] or names != ["vm_state_notify", "all_vcpus_paused"]:
        print("ERROR: the two logs did not give the tail's events: %r / %r" % (first["events"], second["events"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
