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
  - Asks libvirt which domains, running or only defined, have each VF as a PCI passthrough device. When libvirt
    cannot be asked the module still succeeds and says why in RV(libvirt.reason); every VF then shows
    RV(devices[].owner_known=false) and the reason in RV(devices[].owner_error), and no VF counts as free;
    P(openeuler.kae.select_vfs#filter), M(openeuler.kae.hostdev_remap) and the P(openeuler.kae.host#role) role refuse
    to choose or change VFs from such facts.
  - A device that disappears while it is read is left out rather than failing the module.
author:
  - openEuler KAE collection contributors (@openeuler)
extends_documentation_fragment:
  - openeuler.kae.attributes
  - openeuler.kae.attributes.INFO_MODULE
options:
  sysfs_root:
    description:
      - Root of the sysfs tree to read. Symlinks inside it are followed relative to this root, so a
        sysfs-shaped copy (a test fixture, the lab's simulated tree) can stand in for V(/sys).
    type: path
    default: /sys
  libvirt_uri:
    description:
      - libvirt connection used (read-only) to find the domains that hold the VFs.
    type: str
    default: qemu:///system
  assume_unassigned:
    description:
      - For a host without libvirt at all. When libvirt cannot be asked, report every VF as held by no domain
        (RV(devices[].owner_known=true)) instead of unknown, with a warning saying so.
      - Only safe when nothing on the host can hand a VF to a guest; the default refuses to guess.
    type: bool
    default: false
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
        - The libvirt domains, running or only defined, that have this VF as a PCI passthrough device, running ones first
          (VFs only; empty when none or unknown).
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
sysfs_root:
  description: The sysfs root that was read.
  returned: always
  type: str
  sample: /sys
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openeuler.kae.plugins.module_utils import _devices, _validate
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs, SysfsError


def read_owners(devices, libvirt_uri, assume_unassigned=False):
    """Set the VFs' owners from libvirt; returns (libvirt note, warnings)."""
    owners, note = _devices.hostdev_owners(libvirt_uri)
    if note["available"]:
        _devices.assign_domains(devices, owners)
        return note, []
    note["assumed_unassigned"] = bool(assume_unassigned)
    if not assume_unassigned:
        _devices.assign_domains(devices, {}, unknown_reason=note["reason"])
        return note, []
    _devices.assign_domains(devices, {})
    return note, ["libvirt could not be asked which domains hold the KAE VFs (%s); assume_unassigned is set, so every VF is "
                  "reported as held by no domain: nothing else on this host may give VFs to guests" % note["reason"]]


def gather(sysfs_root, libvirt_uri, assume_unassigned=False):
    """The module's result (without changed) for one host, and its warnings."""
    sysfs = Sysfs(_validate.text(sysfs_root, "sysfs_root"))
    devices = _devices.scan(sysfs)
    note, warnings = read_owners(devices, _validate.text(libvirt_uri, "libvirt_uri"), assume_unassigned)
    return {
        "devices": devices,
        "engines": _devices.engine_summary(devices),
        "pf_q_num": _devices.read_pf_q_num(sysfs),
        "migration_drivers": _devices.migration_drivers(sysfs),
        "sysfs_root": sysfs.root,
        "libvirt": note,
    }, warnings


def main():
    module = AnsibleModule(
        argument_spec={
            "sysfs_root": {"type": "path", "default": "/sys"},
            "libvirt_uri": {"type": "str", "default": "qemu:///system"},
            "assume_unassigned": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    try:
        result, warnings = gather(module.params["sysfs_root"], module.params["libvirt_uri"], module.params["assume_unassigned"])
    except (_devices.DeviceError, _validate.InputError) as exc:
        module.fail_json(msg=str(exc))
    except SysfsError as exc:
        module.fail_json(msg="reading the KAE devices failed: %s" % exc)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
