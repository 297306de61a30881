# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Reading and writing a sysfs tree that may live under another root than /sys.

Every path is relative to the tree's root, and symlinks are followed relative to that root too, so
tests and the lab can point the modules at a sysfs-shaped copy. A file that vanishes while it is read
(a device removed under our feet) reads as None instead of raising.
"""

from __future__ import annotations

import errno
import os
import time

# Errors that mean "this entry is not there (any more)".
_GONE = (errno.ENOENT, errno.ENODEV, errno.ENOTDIR, errno.ENXIO)
_MAX_LINK_HOPS = 40


class SysfsError(Exception):
    """A sysfs read or write failed for another reason than the entry being gone."""


class Sysfs:
    """A sysfs tree rooted at ROOT (default /sys)."""

    def __init__(self, root="/sys"):
        self.root = os.path.abspath(root)

    def path(self, rel):
        """Absolute path of REL inside the tree (no link following)."""
        return os.path.join(self.root, rel.lstrip("/"))

    def resolve(self, rel):
        """Follow every symlink in REL, absolute targets taken relative to the root; None when missing."""
        pending = [part for part in rel.split("/") if part]
        parts = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                parts = parts[:-1]
                continue
            candidate = os.path.join(self.root, *(parts + [part]))
            if os.path.islink(candidate):
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    return None
                target = os.readlink(candidate)
                if target.startswith("/"):
                    parts = []
                pending = [p for p in target.split("/") if p] + pending
            elif os.path.lexists(candidate):
                parts.append(part)
            else:
                return None
        return "/".join(parts)

    def read(self, rel):
        """Stripped text of REL, or None when it does not exist (any more)."""
        try:
            with open(self.path(rel), encoding="utf-8", errors="replace") as handle:
                return handle.read().strip()
        except OSError as exc:
            if exc.errno in _GONE or isinstance(exc, IsADirectoryError):
                return None
            raise SysfsError("cannot read %s: %s" % (self.path(rel), exc.strerror)) from exc

    def read_int(self, rel, base=10):
        """REL as an integer, or None when missing or not a number."""
        text = self.read(rel)
        try:
            return int(text, base) if text is not None else None
        except ValueError:
            return None

    def link_name(self, rel):
        """Last component of the target of symlink REL (a driver, group or device name), or None."""
        try:
            return os.path.basename(os.readlink(self.path(rel)).rstrip("/")) or None
        except OSError:
            return None

    def listdir(self, rel):
        """Sorted entries of directory REL, or [] when it does not exist."""
        try:
            return sorted(os.listdir(self.path(rel)))
        except OSError:
            return []

    def exists(self, rel):
        return os.path.lexists(self.path(rel))

    def write(self, rel, value):
        """Write VALUE to sysfs attribute REL, raising SysfsError with the path and the kernel's reason."""
        try:
            with open(self.path(rel), "w", encoding="ascii") as handle:
                handle.write(str(value))
        except OSError as exc:
            raise SysfsError("cannot write %r to %s: %s" % (str(value), self.path(rel), exc.strerror)) from exc


def wait_for(predicate, timeout_s, interval=0.05):
    """Call PREDICATE until it is true or TIMEOUT_S seconds passed; return its last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)
