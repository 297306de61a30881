# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""One lock per host for the collection's state-changing modules.

Two plays on one hypervisor (two operators, or a fleet job beside a single migration) must not interleave
a PF's VF change with another, nor redefine a domain while another module rewrites it. An exclusive
``flock`` on a file under /run/lock serialises them; the kernel drops it when the holder dies, so a killed
play never leaves the host locked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time

DEFAULT_LOCK_DIR = "/run/lock"
LOCK_NAME = "openeuler-kae.lock"
_POLL_S = 0.1


class LockTimeout(Exception):
    """Another play held the host lock for longer than the wait allowed; the message names the lock file."""


def _holder(path):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def host_lock(what, timeout_s, lock_dir=DEFAULT_LOCK_DIR):
    """Hold the host's exclusive lock while the block runs; wait at most TIMEOUT_S seconds for it.

    WHAT says what the holder does (written into the file so a waiting play can name it).
    """
    os.makedirs(lock_dir, exist_ok=True)
    path = os.path.join(lock_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise LockTimeout("another openeuler.kae task holds %s on this host (%s) and did not release it within %s s; "
                                  "wait for it to finish, or raise timeout_s" % (path, _holder(path), timeout_s))
            time.sleep(_POLL_S)
        os.ftruncate(fd, 0)
        os.write(fd, ("pid %d: %s\n" % (os.getpid(), what)).encode("ascii", "replace"))
        yield path
    finally:
        os.close(fd)
