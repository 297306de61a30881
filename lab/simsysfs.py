# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A sysfs-shaped tree of a Kunpeng 920 host's KAE accelerators, and a player that acts as the kernel on it.

build(root, ...) lays out, under ROOT, what /sys shows on a Kunpeng 920 host: for each of ZIP, SEC and
HPRE one PF per accelerator NUMA node under its root port, ``bus/pci/devices/BDF`` links into ``devices/``,
``driver`` links into ``bus/pci/drivers/NAME``, ``iommu_group`` links, ``physfn``/``virtfnN`` links, the
drivers' ``bind``/``unbind`` files, ``bus/pci/drivers_probe`` and ``module/NAME`` for every loaded module:
``initstate``, ``refcnt``, ``srcversion`` (and ``version`` where the module declares one), ``taint`` and, for
the accelerator drivers, ``parameters/{pf_q_num,vfs_num,uacce_mode}``.

The files are plain files, so nothing happens when a program writes one. play(root) is one pass of the
"kernel": it looks at the control files a program may have written (``sriov_numvfs``, ``drivers_probe``,
``drivers/NAME/bind``, ``drivers/NAME/unbind``) and applies them as the kernel would, creating or removing
VF entries and moving driver links. Unit tests call play() right after each write; the lab runs
``simsysfs.py play ROOT...`` in the background, which polls (the modules wait, bounded, for the kernel's
effect after every write, as they must on a real host anyway).

CLI (run with python3): ``simsysfs.py build ROOT [--vfs N] [--migration-driver D] [--revision 0x30]``,
``simsysfs.py play ROOT... [--interval S] [--once]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import time

VENDOR = "0x19e5"
# engine -> (PF device id, VF device id, host driver, kernel module)
ENGINES = {
    "zip": ("0xa250", "0xa251", "hisi_zip", "hisi_zip"),
    "sec": ("0xa255", "0xa256", "hisi_sec2", "hisi_sec2"),
    "hpre": ("0xa258", "0xa259", "hisi_hpre", "hisi_hpre"),
}
# Where each engine's PF sits below the first root bus of its node's IO die: (root port bus offset,
# root port device, PF bus offset). On a Kunpeng 920 node 0 holds 0000:75:00.0 (ZIP), 0000:76:00.0
# (SEC) and 0000:79:00.0 (HPRE); the next IO die repeats the pattern 0x40 buses higher.
SLOTS = {"zip": (0x0, 0x0, 0x1), "sec": (0x0, 0x1, 0x2), "hpre": (0x4, 0x0, 0x5)}
FIRST_BUS = 0x74
DIE_BUS_STRIDE = 0x40
CLASS_ACCEL = "0x120000"
CLASS_BRIDGE = "0x060400"
ROOT_PORT_ID = "0xa121"
MIGRATION_DRIVERS = ("hisi_acc_vfio_pci", "vfio-pci")
NULL_OVERRIDE = "(null)"
LAYOUTS = ("kunpeng920",)
# The file at the root of a lab host's tree that makes the collection count the VFs a guest names in its
# <metadata><kae:vfs> as held (plugins/module_utils/_devices.py LAB_MARKER); the kernel's sysfs never has it.
LAB_MARKER = "kae-lab-simulated"


# ---------------------------------------------------------------- tree helpers

def _path(root, rel):
    return os.path.join(root, rel)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text + "\n" if text and not text.endswith("\n") else text)


def _read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _link(link_path, target_path):
    """Create a relative symlink LINK_PATH -> TARGET_PATH, as sysfs does."""
    os.makedirs(os.path.dirname(link_path), exist_ok=True)
    if os.path.lexists(link_path):
        os.unlink(link_path)
    os.symlink(os.path.relpath(target_path, os.path.dirname(link_path)), link_path)


def _unlink(path):
    if os.path.lexists(path):
        os.unlink(path)


def _bdf(bus, dev, fn):
    return "0000:%02x:%02x.%x" % (bus, dev, fn)


def _bdf_routing_id(bdf):
    bus, devfn = bdf.split(":")[1], bdf.split(":")[2]
    dev, fn = devfn.split(".")
    return (int(bus, 16) << 8) | (int(dev, 16) << 3) | int(fn, 16)


def _bdf_from_routing_id(rid):
    return _bdf(rid >> 8, (rid >> 3) & 0x1F, rid & 0x7)


def _device_dir(root, bdf):
    """Real directory of device BDF (following bus/pci/devices/BDF), or None."""
    link = _path(root, "bus/pci/devices/" + bdf)
    return os.path.realpath(link) if os.path.lexists(link) else None


def _driver_of(root, bdf):
    ddir = _device_dir(root, bdf)
    link = os.path.join(ddir, "driver") if ddir else None
    return os.path.basename(os.readlink(link)) if link and os.path.lexists(link) else None


def _next_iommu_group(root):
    groups = [int(name) for name in os.listdir(_path(root, "kernel/iommu_groups")) if name.isdigit()]
    return max(groups, default=-1) + 1


# ---------------------------------------------------------------- building

def mark(root):
    """Write LAB_MARKER at ROOT (idempotent): the tree is a lab host's."""
    _write(_path(root, LAB_MARKER), "simulated KAE sysfs tree of the openeuler.kae lab")


def _add_driver(root, name, module=None):
    ddir = _path(root, "bus/pci/drivers/" + name)
    for control in ("bind", "unbind", "new_id", "remove_id"):
        # Write-only in sysfs; here an empty file the player clears again after applying a write.
        _write(os.path.join(ddir, control), "")
    if module:
        _link(os.path.join(ddir, "module"), _path(root, "module/" + module))


def default_srcversion(name):
    """The srcversion a simulated module NAME gets: 23 upper-case hex digits, as modpost writes them."""
    return hashlib.sha256(name.encode("ascii")).hexdigest()[:23].upper()


def _add_module(root, name, parameters=None, identity=None):
    """/sys/module/NAME of a loaded module; IDENTITY may set its version, srcversion and taint."""
    mdir = _path(root, "module/" + name)
    os.makedirs(mdir, exist_ok=True)
    identity = dict({"srcversion": default_srcversion(name), "taint": ""}, **(identity or {}))
    _write(os.path.join(mdir, "initstate"), "live")
    _write(os.path.join(mdir, "refcnt"), "0")
    for key in ("version", "srcversion", "taint"):
        if identity.get(key) is not None:
            _write(os.path.join(mdir, key), identity[key])
    for key, value in (parameters or {}).items():
        _write(os.path.join(mdir, "parameters", key), str(value))


def _add_device(root, parent_dir, bdf, device_id, revision, numa_node):
    """Create device BDF under PARENT_DIR with its identity files and bus/iommu links; return its dir."""
    ddir = os.path.join(parent_dir, bdf)
    os.makedirs(ddir)
    for name, value in (("vendor", VENDOR), ("device", device_id), ("subsystem_vendor", VENDOR),
                        ("subsystem_device", "0x0000"), ("revision", revision), ("class", CLASS_ACCEL),
                        ("numa_node", str(numa_node)), ("driver_override", NULL_OVERRIDE)):
        _write(os.path.join(ddir, name), value)
    _link(os.path.join(ddir, "subsystem"), _path(root, "bus/pci"))
    group = _next_iommu_group(root)
    gdir = _path(root, "kernel/iommu_groups/%d" % group)
    os.makedirs(os.path.join(gdir, "devices"))
    _write(os.path.join(gdir, "type"), "DMA")
    _link(os.path.join(gdir, "devices", bdf), ddir)
    _link(os.path.join(ddir, "iommu_group"), gdir)
    _link(_path(root, "bus/pci/devices/" + bdf), ddir)
    return ddir


def _bind(root, bdf, driver):
    ddir = _device_dir(root, bdf)
    drv_dir = _path(root, "bus/pci/drivers/" + driver)
    _link(os.path.join(ddir, "driver"), drv_dir)
    _link(os.path.join(drv_dir, bdf), ddir)


def _unbind(root, bdf):
    driver = _driver_of(root, bdf)
    if driver:
        _unlink(_path(root, "bus/pci/drivers/%s/%s" % (driver, bdf)))
        _unlink(os.path.join(_device_dir(root, bdf), "driver"))
    return driver


def build(root, layout="kunpeng920", nodes=(0, 2), revision="0x30", vfs=4, total_vfs=63,
          migration_driver="hisi_acc_vfio_pci", vf_driver=None, pf_q_num=64, without=(), pf_drivers=None, modules=None,
          lab_marker=False):
    """Lay out a sysfs-shaped tree of a Kunpeng 920 host under ROOT (which must not exist or be empty).

    nodes: the NUMA nodes that hold an accelerator IO die (a 2-socket, 4-node Kunpeng 920 has them on 0
    and 2); the tree declares every node up to the highest one listed plus one.
    revision: PCI revision of every accelerator ("0x30" = QM v3, migratable; "0x21" = not).
    vfs: VFs created on each PF; they are bound to VF_DRIVER (default: the migration driver).
    migration_driver: "hisi_acc_vfio_pci" (openEuler 24.03 / upstream: that driver exists) or "vfio-pci"
    (openEuler 22.03: vfio-pci plus the hisi_migration module); None for neither.
    without: (engine, node) pairs with no PF (for example ("hpre", 2): a node without HPRE).
    pf_drivers: {(engine, node): driver or None} to bind a PF elsewhere or leave it unbound.
    pf_q_num: the drivers' pf_q_num, one number for all or {engine: number}.
    modules: {module name: {"version", "srcversion", "taint"}} to change what /sys/module/NAME shows of a
    module (for example another build's srcversion).
    lab_marker: write LAB_MARKER at the root, as the lab's hosts have it (lab guests record their VFs in metadata).
    Returns {(engine, node): PF BDF}.
    """
    if layout not in LAYOUTS:
        raise ValueError("unknown layout %r; known layouts: %s" % (layout, ", ".join(LAYOUTS)))
    if migration_driver not in MIGRATION_DRIVERS + (None,):
        raise ValueError("migration_driver must be one of %s or None, got %r" % (", ".join(MIGRATION_DRIVERS), migration_driver))
    if os.path.exists(root) and os.listdir(root):
        raise ValueError("%s is not empty; remove it first" % root)
    pf_drivers = pf_drivers or {}
    modules = modules or {}
    if not isinstance(pf_q_num, dict):
        pf_q_num = dict((engine, pf_q_num) for engine in ENGINES)
    os.makedirs(_path(root, "kernel/iommu_groups"), exist_ok=True)
    if lab_marker:
        mark(root)
    for node in range(max(nodes) + 2):
        _write(_path(root, "devices/system/node/node%d/cpulist" % node), "%d-%d" % (node * 32, node * 32 + 31))
    _write(_path(root, "bus/pci/drivers_probe"), "")
    _write(_path(root, "bus/pci/drivers_autoprobe"), "1")
    for module in ("hisi_qm", "uacce", "vfio", "vfio_pci"):
        _add_module(root, module, identity=modules.get(module))
    _add_driver(root, "vfio-pci", "vfio_pci")
    if migration_driver == "hisi_acc_vfio_pci":
        _add_module(root, "hisi_acc_vfio_pci", identity=modules.get("hisi_acc_vfio_pci"))
        _add_driver(root, "hisi_acc_vfio_pci", "hisi_acc_vfio_pci")
    elif migration_driver == "vfio-pci":
        _add_module(root, "hisi_migration", identity=modules.get("hisi_migration"))
    for engine, (_pf, _vf, driver, module) in ENGINES.items():
        _add_module(root, module, {"pf_q_num": pf_q_num[engine], "vfs_num": 0, "uacce_mode": 1}, identity=modules.get(module))
        _add_driver(root, driver, module)

    pfs = {}
    for index, node in enumerate(nodes):
        base = FIRST_BUS + DIE_BUS_STRIDE * index
        for engine, (pf_id, vf_id, driver, _module) in ENGINES.items():
            if (engine, node) in without:
                continue
            root_off, port_dev, pf_off = SLOTS[engine]
            host_bridge = "pci0000:%02x" % (base + root_off)
            port = _bdf(base + root_off, port_dev, 0)
            port_dir = _path(root, "devices/%s/%s" % (host_bridge, port))
            if not os.path.isdir(port_dir):
                # The root port is a Huawei PCI device too, which a scanner must not count as an accelerator.
                _add_device(root, os.path.dirname(port_dir), port, ROOT_PORT_ID, "0x21", node)
                _write(os.path.join(port_dir, "class"), CLASS_BRIDGE)
            bdf = _bdf(base + pf_off, 0, 0)
            ddir = _add_device(root, port_dir, bdf, pf_id, revision, node)
            for name, value in (("sriov_totalvfs", total_vfs), ("sriov_numvfs", 0), ("sriov_offset", 1),
                                ("sriov_stride", 1), ("sriov_vf_device", vf_id[2:]), ("sriov_drivers_autoprobe", 1)):
                _write(os.path.join(ddir, name), str(value))
            pf_driver = pf_drivers.get((engine, node), driver)
            if pf_driver:
                if not os.path.isdir(_path(root, "bus/pci/drivers/" + pf_driver)):
                    _add_driver(root, pf_driver)
                _bind(root, bdf, pf_driver)
            pfs[(engine, node)] = bdf
            if vfs:
                enable_vfs(root, bdf, vfs, driver=vf_driver or migration_driver or driver)
    return pfs


# ---------------------------------------------------------------- the kernel player

def _log(root, message):
    with open(_path(root, "dmesg"), "a", encoding="ascii") as handle:
        handle.write("%.6f %s\n" % (time.time(), message))


def _host_driver_for(device_id):
    for pf_id, vf_id, driver, _module in ENGINES.values():
        if device_id in (pf_id, vf_id):
            return driver
    return None


def _virtfns(pf_dir):
    return sorted((name for name in os.listdir(pf_dir) if name.startswith("virtfn")), key=lambda n: int(n[6:]))


def enable_vfs(root, pf_bdf, count, driver=None):
    """Create COUNT VFs of PF_BDF as the kernel does; bind them to DRIVER, or autoprobe them."""
    pf_dir = _device_dir(root, pf_bdf)
    offset, stride = int(_read(os.path.join(pf_dir, "sriov_offset"))), int(_read(os.path.join(pf_dir, "sriov_stride")))
    vf_id = "0x" + _read(os.path.join(pf_dir, "sriov_vf_device"))
    revision, node = _read(os.path.join(pf_dir, "revision")), _read(os.path.join(pf_dir, "numa_node"))
    autoprobe = _read(os.path.join(pf_dir, "sriov_drivers_autoprobe")) != "0"
    for index in range(count):
        vf = _bdf_from_routing_id(_bdf_routing_id(pf_bdf) + offset + index * stride)
        vf_dir = _add_device(root, os.path.dirname(pf_dir), vf, vf_id, revision, node)
        _link(os.path.join(vf_dir, "physfn"), pf_dir)
        if driver:
            _bind(root, vf, driver)
        elif autoprobe:
            probe(root, vf)
        # The virtfn link comes last: a program waiting for it then sees a finished VF.
        _link(os.path.join(pf_dir, "virtfn%d" % index), vf_dir)
    _write(os.path.join(pf_dir, "sriov_numvfs"), str(count))


def disable_vfs(root, pf_bdf):
    """Remove every VF of PF_BDF as the kernel does."""
    pf_dir = _device_dir(root, pf_bdf)
    for link in reversed(_virtfns(pf_dir)):
        vf_dir = os.path.realpath(os.path.join(pf_dir, link))
        vf = os.path.basename(vf_dir)
        _unbind(root, vf)
        _unlink(_path(root, "bus/pci/devices/" + vf))
        group_dir = os.path.realpath(os.path.join(vf_dir, "iommu_group"))
        shutil.rmtree(group_dir, ignore_errors=True)
        shutil.rmtree(vf_dir, ignore_errors=True)
        _unlink(os.path.join(pf_dir, link))
    _write(os.path.join(pf_dir, "sriov_numvfs"), "0")


def _override(ddir):
    value = _read(os.path.join(ddir, "driver_override"))
    return None if value in (None, "", NULL_OVERRIDE) else value


def can_probe(root, bdf):
    """Whether the kernel lets a driver probe device BDF: a VF of a PF with sriov_drivers_autoprobe 0 needs a driver_override."""
    ddir = _device_dir(root, bdf)
    physfn = os.path.join(ddir, "physfn")
    if not os.path.lexists(physfn) or _override(ddir):
        return True
    return _read(os.path.join(os.path.realpath(physfn), "sriov_drivers_autoprobe")) != "0"


def probe(root, bdf):
    """What a write of BDF to bus/pci/drivers_probe does: bind to driver_override, else to a matching driver."""
    ddir = _device_dir(root, bdf)
    if ddir is None or _driver_of(root, bdf) or not can_probe(root, bdf):
        return None
    driver = _override(ddir) or _host_driver_for(_read(os.path.join(ddir, "device")))
    if driver and os.path.isdir(_path(root, "bus/pci/drivers/" + driver)):
        _bind(root, bdf, driver)
        return driver
    return None


def _take(path):
    """Return and clear the contents of a control file (None when it is empty)."""
    value = _read(path)
    if value:
        os.truncate(path, 0)
    return value or None


def _play_numvfs(root, actions):
    for bdf in sorted(os.listdir(_path(root, "bus/pci/devices"))):
        ddir = _device_dir(root, bdf)
        wanted = _read(os.path.join(ddir, "sriov_numvfs")) if ddir else None
        if wanted is None or not (wanted.isascii() and wanted.isdigit()):
            continue  # not a PF, or a write in progress
        wanted, current = int(wanted), len(_virtfns(ddir))
        total = int(_read(os.path.join(ddir, "sriov_totalvfs")))
        if wanted == current:
            continue
        if wanted > total or (current and wanted):
            reason = "more than sriov_totalvfs %d" % total if wanted > total else "%d VFs already enabled" % current
            _log(root, "pci %s: cannot enable %d VFs: %s" % (bdf, wanted, reason))
            _write(os.path.join(ddir, "sriov_numvfs"), str(current))
            actions.append("%s: refused sriov_numvfs %d" % (bdf, wanted))
        elif wanted:
            enable_vfs(root, bdf, wanted)
            actions.append("%s: enabled %d VFs" % (bdf, wanted))
        else:
            disable_vfs(root, bdf)
            actions.append("%s: disabled %d VFs" % (bdf, current))


def _play_binding(root, actions):
    # Unbinds first: a program that unbinds then binds elsewhere between two passes means that order.
    drivers_dir = _path(root, "bus/pci/drivers")
    drivers = sorted(os.listdir(drivers_dir))
    for driver in drivers:
        bdf = _take(os.path.join(drivers_dir, driver, "unbind"))
        if bdf and _driver_of(root, bdf) == driver:
            _unbind(root, bdf)
            actions.append("%s: unbound from %s" % (bdf, driver))
    for driver in drivers:
        bdf = _take(os.path.join(drivers_dir, driver, "bind"))
        if bdf and _device_dir(root, bdf) and not _driver_of(root, bdf) and can_probe(root, bdf):
            override = _override(_device_dir(root, bdf))
            if override in (None, driver):
                _bind(root, bdf, driver)
                actions.append("%s: bound to %s" % (bdf, driver))
    bdf = _take(_path(root, "bus/pci/drivers_probe"))
    if bdf:
        driver = probe(root, bdf)
        actions.append("%s: probed, driver %s" % (bdf, driver))


def play(root):
    """One pass of the kernel over ROOT's control files; returns what it did (a list of sentences)."""
    actions = []
    _play_binding(root, actions)
    _play_numvfs(root, actions)
    for action in actions:
        _log(root, action)
    return actions


def serve(roots, interval=0.05, passes=None, stop=None):
    """Play the kernel on every tree in ROOTS every INTERVAL seconds: forever, PASSES times, or until STOP is set."""
    done = 0
    while (passes is None or done < passes) and not (stop is not None and stop.is_set()):
        for root in roots:
            if os.path.isdir(_path(root, "bus/pci/devices")):
                play(root)
        done += 1
        time.sleep(interval)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="lay out a Kunpeng 920 KAE sysfs tree under ROOT")
    p_build.add_argument("root")
    p_build.add_argument("--vfs", type=int, default=4, help="VFs created on each PF (default 4)")
    p_build.add_argument("--migration-driver", default="hisi_acc_vfio_pci", choices=MIGRATION_DRIVERS)
    p_build.add_argument("--revision", default="0x30")
    p_build.add_argument("--lab-marker", action="store_true", help="mark the tree as a lab host's (" + LAB_MARKER + ")")
    p_play = sub.add_parser("play", help="act as the kernel on the trees' control files")
    p_play.add_argument("roots", nargs="+")
    p_play.add_argument("--interval", type=float, default=0.05)
    p_play.add_argument("--once", action="store_true", help="one pass, print what was done, exit")
    args = parser.parse_args(argv)
    if args.command == "build":
        pfs = build(args.root, vfs=args.vfs, migration_driver=args.migration_driver, revision=args.revision,
                    lab_marker=args.lab_marker)
        for (engine, node), bdf in sorted(pfs.items()):
            print("%s node %d: PF %s" % (engine, node, bdf))
    elif args.once:
        for root in args.roots:
            for action in play(root):
                print("%s: %s" % (root, action))
    else:
        serve(args.roots, args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
