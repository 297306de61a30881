# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""VFs bound before their PF's driver: rebind the free ones, report the held ones.

hisi_acc_vfio_pci decides at probe time whether a VF can migrate: it installs its migration operations only
when the PF's driver data is there (and the hardware is QM v3). A VF probed while the PF's driver was absent,
or before the PF's driver was reloaded, looks the same in sysfs but has only the plain vfio interface. So
whoever (re)loads or rebinds a PF driver must rebind that PF's VFs afterwards.

A record file (JSON) keeps what is owed: ``{"version": 1, "events": [{"at", "driver", "pfs"}],
"pending": {VF: {"pf", "driver", "since"}}}``. A PF driver (re)load adds the PF's VFs to ``pending``; each run
rebinds the pending VFs no domain holds and keeps the others (never touching a VF a guest holds, nor one
whose holder cannot be known) until a later run finds them free.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from ansible_collections.openeuler.kae.plugins.module_utils import _devices
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import SysfsError, wait_for

RECORD_VERSION = 1
PROC = "/proc"
MAX_EVENTS = 50
HOST_DRIVERS = tuple(ids["driver"] for ids in _devices.ENGINES.values())


class RebindError(Exception):
    """The record or a rebind failed; the message names the file or the VF and what to do."""


def empty_record():
    return {"version": RECORD_VERSION, "events": [], "pending": {}}


def load_record(path):
    """The record at PATH (an empty one when the file does not exist)."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return empty_record()
    except (OSError, ValueError) as exc:
        raise RebindError("cannot read the PF driver record %s: %s; it lists the VFs that still need a rebind, so fix it "
                          "rather than delete it" % (path, exc)) from exc
    if not (isinstance(record, dict) and record.get("version") == RECORD_VERSION and isinstance(record.get("events"), list)
            and isinstance(record.get("pending"), dict)):
        raise RebindError("%s is not a PF driver record of this collection (version %d with events and pending); "
                          "fix it rather than delete it" % (path, RECORD_VERSION))
    return record


def save_record(path, record):
    """Write RECORD to PATH atomically (a crash leaves the old or the new record, never half of one)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".pf-driver-record.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise RebindError("cannot write the PF driver record %s: %s" % (path, exc.strerror)) from exc


def note_loads(sysfs, record, drivers, now):
    """Add an event per (re)loaded host driver in DRIVERS and make every VF of its PFs pending; return the events."""
    events = []
    pfs = [d for d in _devices.scan(sysfs) if d["function"] == "pf"]
    for driver in drivers:
        bound = [pf for pf in pfs if pf["driver"] == driver]
        event = {"at": now, "driver": driver, "pfs": [pf["bdf"] for pf in bound]}
        events.append(event)
        for pf in bound:
            for vf in pf["vfs"]:
                record["pending"][vf] = {"pf": pf["bdf"], "driver": driver, "since": now}
    record["events"] = (record["events"] + events)[-MAX_EVENTS:]
    return events


def _pending_message(vf, entry, why):
    return ("VF %s may not migrate until rebound: PF %s's driver %s was (re)loaded at %s, after the VF was bound; %s"
            % (vf, entry["pf"], entry["driver"], entry["since"], why))


def group_holders(group, proc=None):
    """PIDs that hold /dev/vfio/GROUP open (unbinding a VF of an open group blocks until they let go)."""
    wanted = "/dev/vfio/%s" % group
    proc = proc or PROC
    holders = []
    for pid in (name for name in _listdir(proc) if name.isdigit()):
        fd_dir = os.path.join(proc, pid, "fd")
        for fd in _listdir(fd_dir):
            try:
                if os.readlink(os.path.join(fd_dir, fd)) == wanted:
                    holders.append(int(pid))
                    break
            except OSError:
                continue  # closed, or the process exited, while we looked
    return sorted(holders)


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def settle(sysfs, record, owners, libvirt_note, proc=None):
    """Sort the pending VFs: (to rebind [(vf, driver)], still pending [report], dropped [vf]).

    A VF gone, unbound or on a driver without migration needs no rebind (its next binding to a migration driver
    comes after the PF's driver). A VF a domain holds, whose IOMMU group a process holds open, or any VF while
    libvirt cannot be asked, stays pending.
    """
    rebind, pending, dropped = [], [], []
    for vf, entry in sorted(record["pending"].items()):
        device = _devices.read_device(sysfs, vf)
        if device is None or device["driver"] not in _devices.MIGRATION_DRIVERS:
            dropped.append(vf)
            continue
        holders = group_holders(device["iommu_group"], proc) if device["iommu_group"] is not None else []
        if owners.get(vf):
            why = ("domain %s holds it, so it is left alone; rebind it (openeuler.kae.host) once the domain has released "
                   "it (shut down, or its VFs detached)" % " and ".join(owners[vf]))
            pending.append(dict(entry, vf=vf, domain=owners[vf][0], message=_pending_message(vf, entry, why)))
        elif holders:
            why = ("processes %s hold its IOMMU group /dev/vfio/%s open, so it is left alone; rebind it once they have closed it"
                   % (", ".join(str(pid) for pid in holders), device["iommu_group"]))
            pending.append(dict(entry, vf=vf, domain=None, message=_pending_message(vf, entry, why)))
        elif not libvirt_note.get("available"):
            why = "libvirt could not be asked whether a domain holds it (%s), so it is left alone" % libvirt_note.get("reason")
            pending.append(dict(entry, vf=vf, domain=None, message=_pending_message(vf, entry, why)))
        else:
            rebind.append((vf, device["driver"]))
    return rebind, pending, dropped


def rebind_vf(sysfs, bdf, driver, timeout_s):
    """Unbind VF BDF from DRIVER and bind it to DRIVER again (a new probe, now with the PF driver there)."""
    base = _devices.PCI_DEVICES + "/" + bdf
    try:
        sysfs.write(_devices.PCI_DRIVERS + "/" + driver + "/unbind", bdf)
    except SysfsError as exc:
        raise RebindError("unbinding VF %s from %s failed: %s" % (bdf, driver, exc)) from exc
    if not wait_for(lambda: sysfs.link_name(base + "/driver") is None, timeout_s):
        raise RebindError("VF %s is still bound to %s %s s after unbinding it; check dmesg" % (bdf, driver, timeout_s))
    try:
        _devices.bind_vf(sysfs, bdf, driver, timeout_s)
    except _devices.DeviceError as exc:
        raise RebindError("VF %s was unbound from %s to be probed again, and binding it back failed: %s; bind it by hand "
                          "(openeuler.kae.sriov)" % (bdf, driver, exc)) from exc


def now_text():
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
