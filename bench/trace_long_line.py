# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Benchmark: reading a QEMU log whose first line is one unbroken line of 16, 64 and 256 MiB.

Each log is that line, a newline and one trace event; the events are read from offset 0 with the reading
function of openeuler.kae.qemu_trace_events (read_events in plugins/module_utils/_logread.py). It prints the
median time per log, the time per MiB and the ratio of each to the smallest: a reader whose cost is linear in
the bytes read keeps the time per MiB flat. It is a measurement, not a test: nothing passes or fails on time.
The logs are written to a temporary directory and deleted afterwards.

    .venv/bin/python bench/trace_long_line.py [--repeat N] [--dir DIR]
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
SIZES_MIB = (16, 64, 256)
EVENT = b"219@1795629893.041251:vm_state_notify running 0 reason 7 (finish-migrate)\n"


def write_log(path, size):
    block = b"x" * MIB
    with open(path, "wb") as handle:
        for _step in range(size // MIB):
            handle.write(block)
        handle.write(b"\n" + EVENT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to write the logs (default: a temporary directory)")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(ROOT, ".collections"))
    from ansible_collections.openeuler.kae.plugins.module_utils._logread import read_events  # pylint: disable=import-outside-toplevel

    work = tempfile.mkdtemp(prefix="kae-bench-", dir=args.dir)
    try:
        rows = []
        for size_mib in SIZES_MIB:
            path = os.path.join(work, "long-%d.log" % size_mib)
            write_log(path, size_mib * MIB)
            times = []
            for _run in range(args.repeat):
                start = time.perf_counter()
                result = read_events(path)
                times.append(time.perf_counter() - start)
            assert [event["name"] for event in result["events"]] == ["vm_state_notify"]
            os.unlink(path)
            rows.append((size_mib, statistics.median(times)))
        base = rows[0][1] / rows[0][0]
        print("%-10s %12s %12s %20s" % ("line", "median", "per MiB", "per MiB / 16 MiB's"))
        for size_mib, median in rows:
            figures = ("%d MiB" % size_mib, median * 1000, median * 1000 / size_mib, (median / size_mib) / base)
            print("%-10s %9.1f ms %9.2f ms %20.2f" % figures)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
