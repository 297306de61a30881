# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""The KAE kernel modules of a host: which build runs (identity), where its file comes from (origin).

Identity: ``/sys/module/NAME/srcversion`` is a digest of the module's source, ``version`` its declared version
(when it declares one), ``initstate`` exists only for a loadable module, ``taint`` shows ``O`` for an
out-of-tree one; a module built into the kernel is identified by the kernel release. The VF migration stream
changed between driver builds (newer drivers accept the older stream, older ones reject the newer), so the
hosts of a migration must run the same build of every module on the path.

Origin: ``/lib/modules/RELEASE/modules.dep`` names the file modprobe loads for each module (depmod picks one
when several directories hold it); its first directory says where it comes from: ``kernel`` (the kernel
package), ``extra`` (built out of tree, such as openEuler 24.03's KAE 2.0 procedure installs), ``updates``...
``modules.builtin`` lists the modules built into the kernel.
"""

from __future__ import annotations

import gzip
import lzma
import os
import re

KAE_MODULES = ("hisi_qm", "hisi_zip", "hisi_sec2", "hisi_hpre")
# The modules that carry a VF's migration, per migration driver (device_info's migration_drivers).
MIGRATION_MODULES = {"hisi_acc_vfio_pci": ("hisi_acc_vfio_pci",), "vfio-pci": ("vfio_pci", "hisi_migration")}
REPORTED_MODULES = KAE_MODULES + ("hisi_acc_vfio_pci", "vfio_pci", "hisi_migration")
# vfio_pci is the kernel's own; the origin check covers the modules KAE builds.
ORIGIN_MODULES = KAE_MODULES + ("hisi_acc_vfio_pci", "hisi_migration")
DEFAULT_MODULES_ROOT = "/lib/modules"
_OPENERS = {".xz": lzma.open, ".gz": gzip.open, "": open}
_SRCVERSION_RE = re.compile(rb"(?:^|\x00)srcversion=([0-9A-Fa-f]+)\x00")
_MAX_MODULE_BYTES = 64 * 1024 * 1024


class DriverError(Exception):
    """A module option or file the driver checks cannot use; the message says which and why."""


# ---------------------------------------------------------------- identity

def kernel_release():
    """The running kernel's release (uname -r)."""
    return os.uname().release


def read_module(sysfs, name):
    """What /sys/module/NAME shows: loaded, builtin, version, srcversion, taint."""
    mdir = "module/" + name
    if not sysfs.exists(mdir):
        return {"loaded": False, "builtin": False, "version": None, "srcversion": None, "taint": None}
    loadable = sysfs.exists(mdir + "/initstate")
    return {
        "loaded": True,
        "builtin": not loadable,
        "version": sysfs.read(mdir + "/version") or None,
        "srcversion": sysfs.read(mdir + "/srcversion") or None,
        "taint": sysfs.read(mdir + "/taint") if loadable else None,
    }


def describe(module, kernel):
    """A module's identity in words, for messages: 'srcversion 0A1B... (version 2.0, kernel 6.6.0-28)'."""
    if not module.get("loaded"):
        return "not loaded"
    if module.get("builtin"):
        return "built into kernel %s" % kernel + (" (srcversion %s)" % module["srcversion"] if module.get("srcversion") else "")
    details = (["version %s" % module["version"]] if module.get("version") else []) + ["kernel %s" % kernel]
    return "srcversion %s (%s)" % (module.get("srcversion") or "unknown", ", ".join(details))


def _identity(module, kernel):
    """What must be equal on both hosts: the source digest, or the kernel build when there is none."""
    if not module.get("loaded"):
        return ("absent",)
    build = kernel if module.get("builtin") or not module.get("srcversion") else None
    return (module.get("builtin"), module.get("version"), module.get("srcversion"), build)


def _numbers(text):
    return tuple(int(n) for n in re.findall(r"\d+", text or ""))


def _newer(src, dst, src_kernel, dst_kernel):
    """1 when DST's build is newer than SRC's, -1 when older, None when the facts cannot tell.

    Declared versions decide; the kernel release only for modules identified by it (no srcversion).
    """
    pairs = [(src.get("version"), dst.get("version"))]
    if not src.get("srcversion") and not dst.get("srcversion"):
        pairs.append((src_kernel, dst_kernel))
    for one, other in pairs:
        if one and other and one != other:
            a, b = _numbers(one), _numbers(other)
            return None if a == b else (1 if b > a else -1)
        if one != other:
            return None
    return None


# ---------------------------------------------------------------- origin

def _module_name(path):
    """hisi_zip from .../hisi_zip.ko.xz; dashes read as underscores, as the kernel names modules."""
    return os.path.basename(path).split(".ko")[0].replace("-", "_")


def _relative(path, modules_dir):
    return path[len(modules_dir):].lstrip("/") if path.startswith(modules_dir + "/") else path.lstrip("/")


def read_modules_dep(modules_dir):
    """({module name: path relative to MODULES_DIR}, builtin names), or (None, None) without a modules.dep."""
    try:
        with open(os.path.join(modules_dir, "modules.dep"), encoding="utf-8", errors="replace") as handle:
            dep = handle.read()
    except OSError:
        return None, None
    files = {}
    for line in dep.splitlines():
        path = line.split(":", 1)[0].strip()
        if path:
            files.setdefault(_module_name(path), _relative(path, modules_dir))
    try:
        with open(os.path.join(modules_dir, "modules.builtin"), encoding="utf-8", errors="replace") as handle:
            builtin = set(_module_name(line.strip()) for line in handle if line.strip())
    except OSError:
        builtin = set()
    return files, builtin


def file_srcversion(path):
    """The srcversion recorded in a module file (.ko, .ko.xz, .ko.gz), or None when it cannot be read."""
    suffix = os.path.splitext(path)[1] if not path.endswith(".ko") else ""
    opener = _OPENERS.get(suffix)
    if opener is None:
        return None
    try:
        with opener(path, "rb") as handle:
            data = handle.read(_MAX_MODULE_BYTES)
    except (OSError, EOFError, lzma.LZMAError):
        return None
    found = _SRCVERSION_RE.search(data)
    return found.group(1).decode("ascii").upper() if found else None


def module_origin(name, files, builtin, modules_dir):
    """{file, origin, file_srcversion} of module NAME from modules.dep (FILES) and modules.builtin (BUILTIN)."""
    if files is None:
        return {"file": None, "origin": None, "file_srcversion": None}
    if name in files:
        rel = files[name]
        path = os.path.join(modules_dir, rel)
        return {"file": path, "origin": rel.split("/", 1)[0] if "/" in rel else ".", "file_srcversion": file_srcversion(path)}
    return {"file": None, "origin": "builtin" if name in builtin else None, "file_srcversion": None}


def read_drivers(sysfs, modules_root=DEFAULT_MODULES_ROOT, release=None):
    """(kernel release, modules dir, whether its modules.dep was read, {module: identity and origin})."""
    release = release or kernel_release()
    modules_dir = os.path.join(modules_root, release)
    files, builtin = read_modules_dep(modules_dir)
    drivers = {}
    for name in REPORTED_MODULES:
        drivers[name] = dict(read_module(sysfs, name), **module_origin(name, files, builtin, modules_dir))
    return release, modules_dir, files is not None, drivers


def check_origin_word(value):
    """VALUE as a directory name under /lib/modules/RELEASE (extra, kernel, updates, ...) or 'builtin'."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", value) or value in (".", ".."):
        raise DriverError("driver_origin must name a directory under /lib/modules/RELEASE such as extra, kernel or updates "
                          "(or builtin), got %r" % (value,))
    return value


def origin_problems(drivers, expected, modules_dir, dep_found):
    """Sentences for each KAE module whose file is not under EXPECTED, is missing, or is not the loaded build."""
    if not dep_found:
        return ["%s/modules.dep does not exist: cannot tell where the KAE modules come from; install the kernel's modules "
                "(or run depmod), or leave driver_origin unset" % modules_dir]
    problems = []
    for name in ORIGIN_MODULES:
        module = drivers[name]
        if name in ("hisi_acc_vfio_pci", "hisi_migration") and not module["loaded"] and module["origin"] is None:
            continue  # a migration driver this release does not use
        if module["origin"] is None:
            problems.append("%s has no module file under %s (modules.dep does not list it): install it under %s/%s and run depmod"
                            % (name, modules_dir, modules_dir, expected))
        elif module["origin"] != expected:
            problems.append("%s comes from %s (%s), not from %s: install the %s build of %s and run depmod"
                            % (name, module["origin"], module["file"] or "built into the kernel", expected, expected, name))
        elif module["srcversion"] and module["file_srcversion"] and module["srcversion"] != module["file_srcversion"]:
            problems.append("the loaded %s (srcversion %s) is not %s (srcversion %s): reload it while no VF is in use "
                            "(modprobe -r, then modprobe)" % (name, module["srcversion"], module["file"], module["file_srcversion"]))
    return problems


# ---------------------------------------------------------------- parity between hosts

def _side(facts):
    return facts.get("drivers"), facts.get("kernel_release"), facts.get("host")


def _compared_modules(src, dst):
    names = list(KAE_MODULES)
    for facts in (src, dst):
        for driver in facts.get("migration_drivers") or ():
            names.extend(n for n in MIGRATION_MODULES.get(driver, ()) if n not in names)
    return names


def parity(src, dst, allow_newer_destination=False):
    """(problems, warnings) about the driver builds of two device_info results (both empty without driver facts).

    With ALLOW_NEWER_DESTINATION a difference where the destination's build is the newer one is a warning: a
    newer driver accepts the older migration stream (a move back would not).
    """
    if not (isinstance(src, dict) and isinstance(dst, dict) and isinstance(src.get("drivers"), dict) and isinstance(dst.get("drivers"), dict)):
        return [], []
    (src_drivers, src_kernel, src_host), (dst_drivers, dst_kernel, dst_host) = _side(src), _side(dst)
    problems, warnings = [], []
    for name in _compared_modules(src, dst):
        one, other = src_drivers.get(name) or {}, dst_drivers.get(name) or {}
        if _identity(one, src_kernel) == _identity(other, dst_kernel):
            continue
        sentence = "%s differs: source%s %s, destination%s %s" % (
            name, " " + src_host if src_host else "", describe(one, src_kernel),
            " " + dst_host if dst_host else "", describe(other, dst_kernel))
        newer = _newer(one, other, src_kernel, dst_kernel) if one.get("loaded") and other.get("loaded") else None
        if allow_newer_destination and newer == 1:
            warnings.append("%s: allowed for a one-way move to the newer destination build (a newer driver accepts the "
                            "older migration stream; a move back would be refused)" % sentence)
        else:
            problems.append("%s: run the same build of %s on both hosts (the VF migration stream changed between driver "
                            "builds: a newer driver accepts the older stream, an older one rejects the newer)" % (sentence, name))
    return problems, warnings
