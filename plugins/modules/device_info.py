#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: device_info
short_description: List the KAE accelerators (ZIP, SEC, HPRE) of a host and the libvirt domains holding their VFs
version_added: 0.1.0
description:
  - Reads every Kunpeng Accelerator Engine physical function (PF) and virtual function (VF) from the host's
    sysfs C(bus/pci/devices) (vendor C(0x19e5); ZIP C(0xa250)/C(0xa251), SEC C(0xa255)/C(0xa256),
    HPRE C(0xa258)/C(0xa259)).
  - Asks libvirt (O(uri), read-only) which domains, running or only defined, have each VF as a PCI passthrough device. When libvirt
    cannot be asked the module still succeeds and says why in RV(libvirt.reason); every VF then shows
    RV(devices[].owner_known=false) and the reason in RV(devices[].owner_error), and no VF counts as free;
    P(openeuler.kae.select_vfs#filter), M(openeuler.kae.hostdev_remap) and the P(openeuler.kae.host#role) role refuse
    to choose or change VFs from such facts.
  - A device that disappears while it is read is left out rather than failing the module.
  - "In the lab only: when the tree at O(sysfs_root) is a simulated one (it holds the file C(kae-lab-simulated) at its
    root, which the kernel's sysfs never has; RV(lab=true)), a domain also holds the VFs its
    C(<metadata><kae:vfs xmlns:kae='http://openeuler.org/xmlns/kae/lab-vfs/1.0'>) names (one C(<kae:vf address='BDF'/>)
    each), because no VF can be passed through there. On a real host (C(/sys), or any tree without the marker) that
    metadata is ignored."
  - Each VF's queue class (RV(devices[].queue_class)) is derived from its engine's C(pf_q_num), its PF's C(sriov_numvfs)
    and whether it is its PF's last VF, because the kernel shows no queue count of a VF bound to a vfio driver; the
    PF driver splits the queues left after C(pf_q_num) evenly and gives the remainder to the last VF, and the
    destination driver refuses a VF whose queue count differs.
  - Reports the identity (RV(drivers)) of C(hisi_qm), C(hisi_zip), C(hisi_sec2), C(hisi_hpre) and the VF migration
    modules from C(/sys/module/NAME) and the running kernel release, and the file C(modprobe) loads for each from
    C(modules.dep) under O(modules_root); nothing is run.
author:
  - openEuler KAE collection contributors (@openeuler)
extends_documentation_fragment:
  - openeuler.kae.attributes
  - openeuler.kae.attributes.INFO_MODULE
  - openeuler.kae._libvirt
  - openeuler.kae._sysfs
options:
  assume_unassigned:
    description:
      - For a host without libvirt at all. When libvirt cannot be asked, report every VF as held by no domain
        (RV(devices[].owner_known=true)) instead of unknown, with a warning saying so.
      - Only safe when nothing on the host can hand a VF to a guest; the default refuses to guess.
    type: bool
    default: false
  modules_root:
    description:
      - Directory holding the kernel module trees (C(RELEASE/modules.dep)), read to find each KAE module's file.
    type: path
    default: /lib/modules
  driver_origin:
    description:
      - Directory under C(/lib/modules/RELEASE) the KAE modules must come from, for example V(extra) (openEuler 24.03's
        out-of-tree KAE 2.0 build) or V(kernel) (the kernel package's own); V(builtin) for modules built into the kernel.
      - When set, RV(driver_origin_problems) lists every KAE module whose file comes from elsewhere, is missing, or is
        not the build that is loaded. The module itself does not fail.
    type: str
requirements:
  - libvirt-python (python3-libvirt) on the managed host, to report VF assignment; without it RV(libvirt.available) is V(false).
notes:
  - The collection's device facts format is shared by M(openeuler.kae.sriov), the P(openeuler.kae.select_vfs#filter)
    and P(openeuler.kae.device_parity#filter) filters, and the P(openeuler.kae.guest#role) role.
seealso:
  - module: openeuler.kae.sriov
  - plugin: openeuler.kae.select_vfs
    plugin_type: filter
  - plugin: openeuler.kae.device_parity
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Read the KAE inventory
  openeuler.kae.device_info:
  register: kae

- name: Show free ZIP VFs (none when libvirt could not say who holds them)
  ansible.builtin.debug:
    msg: "{{ kae.devices | selectattr('engine', 'eq', 'zip') | selectattr('function', 'eq', 'vf')
             | selectattr('owner_known') | selectattr('domain', 'none') | map(attribute='bdf') }}"

- name: Read a simulated tree
  openeuler.kae.device_info:
    sysfs_root: /var/lib/kae-lab/hosts/kae-lab-a/sysfs
"""

RETURN = r"""
devices:
  description: Every KAE PF and VF, sorted by PCI address.
  returned: always
  type: list
  elements: dict
  contains:
    bdf:
      description: PCI address.
      type: str
      sample: "0000:75:00.1"
    engine:
      description: Accelerator engine.
      type: str
      choices: [zip, sec, hpre]
    function:
      description: Physical or virtual function.
      type: str
      choices: [pf, vf]
    vendor:
      description: PCI vendor id.
      type: str
      sample: "0x19e5"
    device:
      description: PCI device id.
      type: str
      sample: "0xa251"
    numa_node:
      description: NUMA node of the device, V(-1) when the kernel does not know it.
      type: int
      sample: 0
    iommu_group:
      description: IOMMU group number, V(null) without an IOMMU group.
      type: int
      sample: 12
    driver:
      description: Bound driver, V(null) when unbound.
      type: str
      sample: hisi_acc_vfio_pci
    revision:
      description: PCI revision.
      type: str
      sample: "0x30"
    migratable_hw:
      description: Whether the hardware supports live migration (queue manager v3, revision V(0x30) or later).
      type: bool
    pf:
      description: The VF's PF (VFs only).
      type: str
      sample: "0000:75:00.0"
    owner_known:
      description:
        - Whether libvirt said which domains hold this VF (VFs only). V(false) when libvirt could not be asked;
          such a VF is never free.
      type: bool
    owner_error:
      description: Why the VF's owner is unknown (VFs only).
      type: str
      returned: when RV(devices[].owner_known=false)
      sample: "cannot connect to libvirt at qemu:///system: Failed to connect socket"
    domains:
      description:
        - The libvirt domains, running or only defined, that have this VF as a PCI passthrough device (in the lab, see
          RV(lab), or name it in their C(<metadata><kae:vfs>)), running ones first (VFs only; empty when none or unknown).
      type: list
      elements: str
      sample: [guest1]
    domain:
      description: The first of RV(devices[].domains), V(null) when none or unknown (VFs only).
      type: str
      sample: guest1
    vfs:
      description: The PF's VFs in C(virtfnN) order (PFs only).
      type: list
      elements: str
    sriov_totalvfs:
      description: Most VFs the PF supports (PFs only).
      type: int
      sample: 63
    sriov_numvfs:
      description: VFs currently enabled (PFs only).
      type: int
      sample: 4
    vf_index:
      description: The VF's index on its PF, from the PF's C(virtfnN) link (V(0) is the kernel's VF 1); V(null) when the
        PF does not list it (VFs only).
      type: int
      sample: 0
    queue_class:
      description:
        - What decides the VF's queue count (VFs only), derived rather than read (the kernel does not show it while the
          VF is bound to a vfio driver). Two VFs take each other's place in a migration only when their classes are equal
          and fully known; a part the host did not show is V(null).
      type: dict
      contains:
        pf_q_num:
          description: C(pf_q_num) of the engine's host driver.
          type: int
        num_vfs:
          description: C(sriov_numvfs) of the VF's PF.
          type: int
        last:
          description: Whether the VF is its PF's last (it gets the remainder of the queue split).
          type: bool
      sample: {"pf_q_num": 64, "num_vfs": 7, "last": false}
engines:
  description: Per engine (all three listed, absent ones with zero counts) the number of PFs, VFs and free VFs
    (unassigned, on a migration driver, migratable hardware) and the NUMA nodes holding its PFs.
  returned: always
  type: dict
  sample: {"zip": {"pfs": 2, "vfs": 8, "free_vfs": 7, "numa_nodes": [0, 2]}}
pf_q_num:
  description: The C(pf_q_num) parameter of each engine's host driver module, for the engines whose module exposes it.
  returned: always
  type: dict
  sample: {"zip": 64, "sec": 64, "hpre": 64}
migration_drivers:
  description: The VF migration drivers the host offers, preferred first (C(vfio-pci) only when C(hisi_migration) is loaded).
  returned: always
  type: list
  elements: str
  sample: [hisi_acc_vfio_pci]
host:
  description: The host's node name, used in messages that compare two hosts.
  returned: always
  type: str
  sample: hv-a
kernel_release:
  description: The running kernel's release.
  returned: always
  type: str
  sample: 6.6.0-28.0.0.34.oe2403.aarch64
modules_dir:
  description: The module tree of the running kernel that was read.
  returned: always
  type: str
  sample: /lib/modules/6.6.0-28.0.0.34.oe2403.aarch64
modules_dep:
  description: Whether RV(modules_dir)C(/modules.dep) could be read (V(false) when the kernel's modules are not installed).
  returned: always
  type: bool
drivers:
  description:
    - Per module (C(hisi_qm), C(hisi_zip), C(hisi_sec2), C(hisi_hpre), C(hisi_acc_vfio_pci), C(vfio_pci), C(hisi_migration))
      its identity from C(/sys/module/NAME) and its file from C(modules.dep).
    - Keys C(loaded) (C(/sys/module/NAME) exists), C(builtin) (no C(initstate), so built into the kernel), C(version),
      C(srcversion) and C(taint) (C(O) for out of tree) as the kernel shows them, C(file) (the path modprobe loads),
      C(origin) (its first directory under RV(modules_dir), such as C(extra) or C(kernel); C(builtin) when
      C(modules.builtin) lists it) and C(file_srcversion) (read from an uncompressed, xz or gzip file). Absent values are V(null).
  returned: always
  type: dict
  sample: {"hisi_zip": {"loaded": true, "builtin": false, "version": null, "srcversion": "5E2F2C9E0B8A4C1D7A9B3F1",
           "taint": "O", "file": "/lib/modules/6.6.0/extra/hisi_zip.ko", "origin": "extra",
           "file_srcversion": "5E2F2C9E0B8A4C1D7A9B3F1"}}
driver_origin_problems:
  description: With O(driver_origin), one sentence per KAE module whose file comes from elsewhere, is missing, or is not
    the loaded build; empty otherwise.
  returned: always
  type: list
  elements: str
sysfs_root:
  description: The sysfs root that was read.
  returned: always
  type: str
  sample: /sys
lab:
  description:
    - Whether O(sysfs_root) is a simulated lab tree (it holds C(kae-lab-simulated)), so that the VFs named in the domains'
      C(<metadata><kae:vfs>) count as held by them (RV(devices[].domains)). Always V(false) on a real host.
  returned: always
  type: bool
  sample: false
libvirt:
  description: Whether VF assignment could be read from libvirt.
  returned: always
  type: dict
  contains:
    available:
      description: V(true) when libvirt answered.
      type: bool
    uri:
      description: The libvirt URI asked.
      type: str
    reason:
      description: Why libvirt could not be asked (only when RV(libvirt.available=false)).
      type: str
      returned: when libvirt was not available
    assumed_unassigned:
      description: V(true) when libvirt could not be asked and O(assume_unassigned) made every VF count as held by no domain.
      type: bool
      returned: when libvirt was not available
"""

import platform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openeuler.kae.plugins.module_utils import _args, _devices, _drivers, _validate
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs, SysfsError


def read_owners(devices, uri, assume_unassigned=False, lab=False):
    """Set the VFs' owners from libvirt (LAB: the simulated holdings too); returns the libvirt note."""
    owners, note = _devices.hostdev_owners(uri, lab)
    if note["available"]:
        _devices.assign_domains(devices, owners)
        return note
    note["assumed_unassigned"] = bool(assume_unassigned)
    _devices.assign_domains(devices, {}, unknown_reason=None if assume_unassigned else note["reason"])
    return note


def assumption_warning(note):
    """The warning a result whose VF owners were assumed, not read, must carry; None otherwise."""
    if not note.get("assumed_unassigned"):
        return None
    return ("libvirt could not be asked which domains hold the KAE VFs (%s); assume_unassigned is set, so every VF is "
            "reported as held by no domain: nothing else on this host may give VFs to guests" % note["reason"])


def gather(sysfs_root, uri, modules_root=_drivers.DEFAULT_MODULES_ROOT, driver_origin=None, assume_unassigned=False):
    """The module's result (without changed) for one host."""
    if driver_origin is not None:
        _drivers.check_origin_word(driver_origin)
    _args.check_shared({"sysfs_root": sysfs_root, "uri": uri})
    sysfs = Sysfs(sysfs_root)
    devices = _devices.scan(sysfs)
    lab = _devices.is_lab_tree(sysfs)
    note = read_owners(devices, uri, assume_unassigned, lab)
    release, modules_dir, dep_found, drivers = _drivers.read_drivers(sysfs, modules_root)
    return {
        "host": platform.node(),
        "kernel_release": release,
        "modules_dir": modules_dir,
        "modules_dep": dep_found,
        "drivers": drivers,
        "driver_origin_problems": _drivers.origin_problems(drivers, driver_origin, modules_dir, dep_found) if driver_origin else [],
        "devices": devices,
        "engines": _devices.engine_summary(devices),
        "pf_q_num": _devices.read_pf_q_num(sysfs),
        "migration_drivers": _devices.migration_drivers(sysfs),
        "sysfs_root": sysfs.root,
        "lab": lab,
        "libvirt": note,
    }


def main():
    module = AnsibleModule(
        argument_spec=_args.merge({
            "modules_root": {"type": "path", "default": _drivers.DEFAULT_MODULES_ROOT},
            "driver_origin": {"type": "str"},
            "assume_unassigned": {"type": "bool", "default": False},
        }, _args.host_options()),
        supports_check_mode=True,
    )
    try:
        result = gather(module.params["sysfs_root"], module.params["uri"], module.params["modules_root"],
                        module.params["driver_origin"], module.params["assume_unassigned"])
    except (_devices.DeviceError, _drivers.DriverError, _validate.InputError) as exc:
        module.fail_json(msg=str(exc))
    except SysfsError as exc:
        module.fail_json(msg="reading the KAE devices failed: %s" % exc)
    warning = assumption_warning(result["libvirt"])
    if warning:
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
