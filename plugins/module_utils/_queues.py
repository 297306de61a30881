# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Queue classes of KAE VFs: which VFs of two hosts the destination driver accepts for each other.

The PF driver keeps ``pf_q_num`` queues of its queue manager and splits the rest evenly over the PF's VFs,
giving the remainder to the last one (``qm_vf_q_assign`` in drivers/crypto/hisilicon/qm.c): 1024 queues,
``pf_q_num`` 64 and 7 VFs give 137 queues to each of the first six VFs and 138 to the seventh. On the
destination ``hisi_acc_vfio_pci`` refuses a migration stream whose VF queue count differs from its own VF's
("failed to match VF qp num").

The kernel shows no VF's queue count while the VF is bound to a vfio driver (uacce's ``available_instances``
exists only for functions on their host driver, and counts the free queues), and the queue manager's total
comes from a hardware register. So the class is derived from what decides the count on identical hardware:
the engine's ``pf_q_num``, the PF's ``sriov_numvfs`` and whether the VF is its PF's last.
"""

from __future__ import annotations

from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import ascii_int

CLASS_KEYS = ("pf_q_num", "num_vfs", "last")


def _virtfn_indexes(sysfs, pf_bdf):
    """{VF BDF: its index on the PF} from the PF's virtfnN links (virtfn0 is the kernel's VF 1)."""
    indexes = {}
    pf_dir = "bus/pci/devices/" + pf_bdf
    for name in sysfs.listdir(pf_dir):
        index = ascii_int(name[6:]) if name.startswith("virtfn") else None
        if index is not None:
            vf = sysfs.link_name(pf_dir + "/" + name)
            if vf:
                indexes[vf] = index
    return indexes


def queue_class(engine_pf_q_num, num_vfs, index):
    """The class of VF INDEX (0-based) of a PF with NUM_VFS VFs whose engine keeps ENGINE_PF_Q_NUM queues."""
    last = None if index is None or num_vfs is None else index == num_vfs - 1
    return {"pf_q_num": engine_pf_q_num, "num_vfs": num_vfs, "last": last}


def annotate(sysfs, devices, pf_q_num):
    """Give each VF of DEVICES its ``vf_index`` (None when its PF does not list it) and ``queue_class``.

    PF_Q_NUM is {engine: pf_q_num} as the host's driver modules expose it; an engine missing there gets a class
    with pf_q_num None, which matches no other class.
    """
    pfs = dict((d["bdf"], d) for d in devices if d["function"] == "pf")
    indexes = {}
    for bdf in pfs:
        indexes.update(_virtfn_indexes(sysfs, bdf))
    for vf in (d for d in devices if d["function"] == "vf"):
        pf = pfs.get(vf.get("pf"))
        vf["vf_index"] = indexes.get(vf["bdf"])
        num_vfs = pf["sriov_numvfs"] if pf else None
        vf["queue_class"] = queue_class(pf_q_num.get(vf["engine"]), num_vfs, vf["vf_index"])
    return devices


def known(cls):
    """Whether a queue class can be compared: every part read from the host."""
    return isinstance(cls, dict) and all(cls.get(key) is not None for key in CLASS_KEYS)


def same_class(one, other):
    """Whether two VFs are of one queue class (the same engine, both classes known and equal)."""
    a, b = one.get("queue_class"), other.get("queue_class")
    return one.get("engine") == other.get("engine") and known(a) and known(b) and all(a[k] == b[k] for k in CLASS_KEYS)


def describe(cls):
    """A class in words: 'pf_q_num 64, 7 VFs, the last VF' (parts the host did not show say 'unknown')."""
    if not isinstance(cls, dict):
        return "unknown queue class (no queue_class in the device facts: read them with openeuler.kae.device_info)"
    pf_q_num = cls.get("pf_q_num")
    num_vfs = cls.get("num_vfs")
    return "pf_q_num %s, %s VFs, %s" % ("unknown" if pf_q_num is None else pf_q_num, "unknown" if num_vfs is None else num_vfs,
                                        {True: "the last VF", False: "not the last VF"}.get(cls.get("last"), "position unknown"))


def class_key(vf):
    """A hashable key of the VF's engine and queue class (None when the class is not fully known)."""
    cls = vf.get("queue_class")
    return (vf.get("engine"),) + tuple(cls[k] for k in CLASS_KEYS) if known(cls) else None


def matching_only(devices, wanted):
    """DEVICES without the VFs that belong to no queue class of the VFs in WANTED (PFs kept)."""
    keys = set(class_key(vf) for vf in wanted) - {None}
    return [d for d in devices if d.get("function") != "vf" or class_key(d) in keys]


def shortages(wanted, candidates, host):
    """Sentences, one per VF of WANTED with no VF of its queue class among CANDIDATES (free VFs of HOST)."""
    sentences = []
    for vf in sorted(wanted, key=lambda d: d["bdf"]):
        if any(same_class(vf, other) for other in candidates):
            continue
        others = {}
        for other in candidates:
            if other.get("engine") == vf["engine"]:
                others.setdefault(describe(other.get("queue_class")), []).append(other["bdf"])
        seen = "; ".join("%s: %s" % (cls, ", ".join(sorted(bdfs))) for cls, bdfs in sorted(others.items())) or "none"
        sentences.append("%s VF %s is of queue class %s, and %s has no free %s VF of that class (its free %s VFs by class: %s)"
                         % (vf["engine"], vf["bdf"], describe(vf.get("queue_class")), host, vf["engine"], vf["engine"], seen))
    return sentences
