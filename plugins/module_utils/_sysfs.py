# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Reading and writing a sysfs tree that may live under another root than /sys.

Every path is relative to the tree's root, and symlinks are followed relative to that root too, so
tests and the lab can point the modules at a sysfs-shaped copy. Nothing is read or written outside the
root: a symlink or a '..' that leaves it is an error, not a path to follow. Writes go to existing
attributes only (a missing attribute is an error, never a new file). A file that vanishes while it is
read (a device removed under our feet) reads as None instead of raising.
"""

from __future__ import annotations

import errno
import os
import re
import time

# Errors that mean "this entry is not there (any more)".
_GONE = (errno.ENOENT, errno.ENODEV, errno.ENOTDIR, errno.ENXIO, errno.EISDIR)
_MAX_LINK_HOPS = 40
# A sysfs attribute holds at most a page; a bigger file is not one.
_MAX_READ = 65536
# Numbers in sysfs are ASCII; int() would also take other scripts' digits.
_INT_FORMS = {10: re.compile(r"-?[0-9]{1,19}"), 16: re.compile(r"(?:0[xX])?[0-9a-fA-F]{1,16}")}


class SysfsError(Exception):
    """A sysfs read or write failed for another reason than the entry being gone."""


def ascii_int(text, base=10):
    """TEXT (ASCII digits, an optional 0x in base 16) as an int, or None when it is no such number."""
    form = _INT_FORMS[base]
    if not isinstance(text, str) or not form.fullmatch(text):
        return None
    return int(text, base)


def _plain(text, what):
    if "\x00" in text:
        raise SysfsError("%s %r contains a NUL byte" % (what, text))
    return text


class Sysfs:
    """A sysfs tree rooted at ROOT (default /sys)."""

    def __init__(self, root="/sys"):
        self.root = os.path.abspath(_plain(root, "sysfs root"))

    def path(self, rel):
        """Absolute path of REL inside the tree as written (no link following; for messages)."""
        return os.path.join(self.root, rel.lstrip("/"))

    def resolve(self, rel):
        """REL with every symlink followed inside the tree (absolute targets taken relative to the root).

        Returns the path relative to the root, or None when an entry is missing (or links loop).
        Raises SysfsError when a symlink or '..' would leave the root.
        """
        pending = [part for part in _plain(rel, "sysfs path").split("/") if part]
        parts = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                if not parts:
                    raise SysfsError("%s leads outside the sysfs tree %s (a symlink or '..' leaves it); refusing to follow it"
                                     % (self.path(rel), self.root))
                parts.pop()
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

    def _real(self, rel):
        """Absolute path of REL after resolve(), or None when missing."""
        resolved = self.resolve(rel)
        if resolved is None:
            return None
        return os.path.join(self.root, resolved) if resolved else self.root

    def _parent_and_name(self, rel):
        """(resolved absolute parent, last component) of REL, parent None when missing."""
        head, name = os.path.split(_plain(rel, "sysfs path").rstrip("/"))
        if name in ("", ".", ".."):
            return self._real(rel), None
        return self._real(head), name

    def read(self, rel):
        """Stripped text of REL, or None when it does not exist (any more)."""
        real = self._real(rel)
        if real is None:
            return None
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
                return handle.read(_MAX_READ).strip()
        except OSError as exc:
            if exc.errno in _GONE:
                return None
            raise SysfsError("cannot read %s: %s" % (self.path(rel), exc.strerror)) from exc

    def read_int(self, rel, base=10):
        """REL as an integer, or None when missing or not a number."""
        return ascii_int(self.read(rel), base)

    def link_name(self, rel):
        """Last component of the target of symlink REL (a driver, group or device name), or None."""
        parent, name = self._parent_and_name(rel)
        if parent is None or name is None:
            return None
        try:
            return os.path.basename(os.readlink(os.path.join(parent, name)).rstrip("/")) or None
        except OSError:
            return None

    def listdir(self, rel):
        """Sorted entries of directory REL, or [] when it does not exist."""
        real = self._real(rel)
        try:
            return sorted(os.listdir(real)) if real is not None else []
        except OSError:
            return []

    def exists(self, rel):
        """Whether REL is there (a dangling symlink counts: the entry exists)."""
        parent, name = self._parent_and_name(rel)
        if name is None:
            return parent is not None
        return parent is not None and os.path.lexists(os.path.join(parent, name))

    def write(self, rel, value):
        """Write VALUE to the existing sysfs attribute REL, raising SysfsError with the path and the kernel's reason."""
        text = str(value)
        shown = "cannot write %r to %s" % (text, self.path(rel))
        if "\x00" in text or not text.isascii():
            raise SysfsError("%s: a sysfs value is printable ASCII" % shown)
        real = self._real(rel)
        if real is None:
            raise SysfsError("%s: no such attribute (it is never created)" % shown)
        try:
            fd = os.open(real, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode("ascii"))
            finally:
                os.close(fd)
        except OSError as exc:
            raise SysfsError("%s: %s" % (shown, exc.strerror)) from exc


def wait_for(predicate, timeout_s, interval=0.05):
    """Call PREDICATE until it is true or TIMEOUT_S seconds passed; return its last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)
