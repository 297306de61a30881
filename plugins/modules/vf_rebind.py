#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vf_rebind
short_description: Rebind the KAE VFs that were bound before their PF's driver was (re)loaded
version_added: 0.1.0
description:
  - C(hisi_acc_vfio_pci) gives a VF its live-migration operations only if the PF's driver was there when the VF was
    probed. A VF bound while the PF's driver was absent, or before the PF's driver was reloaded, looks the same in sysfs
    but cannot migrate until it is probed again.
  - Give O(drivers) the host drivers you have just (re)loaded or rebound to their PFs. The module records the event in
    O(record) and owes every VF of those PFs a rebind (unbind, then bind to the same migration driver).
  - On every run it rebinds the VFs it owes that no libvirt domain holds and whose IOMMU group no process holds open,
    and keeps the others in O(record) for a later run. A VF a guest holds is never touched; it is reported, with a
    warning, as one that may not migrate until rebound. While libvirt (O(uri), read-only) cannot be asked no VF is
    touched.
  - A VF owed a rebind that is gone, unbound, or on a driver without migration is dropped from the record, since its next
    binding to a migration driver comes after the PF's driver anyway.
  - The role P(openeuler.kae.host#role) runs it after loading drivers and on every run.
author:
  - openEuler KAE collection contributors (@openeuler)
extends_documentation_fragment:
  - openeuler.kae.attributes
  - openeuler.kae._sysfs
  - openeuler.kae._libvirt
attributes:
  check_mode:
    support: full
    details:
      - Reports what it would record and rebind; writes nothing.
  diff_mode:
    support: none
options:
  drivers:
    description: Host drivers (re)loaded or rebound to their PFs since the VFs were bound; empty to only settle what is owed.
    type: list
    elements: str
    choices: [hisi_zip, hisi_sec2, hisi_hpre]
    default: []
  record:
    description: JSON file that keeps the PF driver events and the VFs still owed a rebind.
    type: path
    default: /var/lib/openeuler-kae/pf-driver-record.json
  timeout_s:
    description: Seconds to wait for the host lock and for the kernel after each unbind or bind.
    type: float
    default: 10
requirements:
  - libvirt-python (python3-libvirt) on the managed host, to rebind anything (without it every VF owed a rebind stays owed).
seealso:
  - module: openeuler.kae.sriov
  - module: openeuler.kae.device_info
"""

EXAMPLES = r"""
- name: After reloading hisi_zip, probe the ZIP VFs again so that they can migrate
  openeuler.kae.vf_rebind:
    drivers: [hisi_zip]
  register: rebind

- name: Settle what earlier runs still owe (VFs guests held then)
  openeuler.kae.vf_rebind:
"""

RETURN = r"""
events:
  description: The PF driver events recorded by this run.
  returned: always
  type: list
  elements: dict
  sample: [{"at": "2025-05-21T14:02:11+0800", "driver": "hisi_zip", "pfs": ["0000:75:00.0", "0000:b5:00.0"]}]
rebound:
  description: The VFs unbound and bound again (in check mode, that would be), each with its driver.
  returned: always
  type: list
  elements: dict
  sample: [{"vf": "0000:75:00.1", "driver": "hisi_acc_vfio_pci"}]
pending:
  description:
    - The VFs still owed a rebind, each with C(vf), C(pf), C(driver) (the PF's), C(since), C(domain) (the holder, or null)
      and C(message) (why it was left alone; also given as a warning).
  returned: always
  type: list
  elements: dict
dropped:
  description: VFs no longer owed a rebind (gone, unbound, or on a driver without migration).
  returned: always
  type: list
  elements: str
record:
  description: The record file.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openeuler.kae.plugins.module_utils import _args, _devices, _rebind, _validate
from ansible_collections.openeuler.kae.plugins.module_utils._hostlock import LockTimeout, host_lock
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs, SysfsError


def settle_record(params, check_mode):
    """The module's result for PARAMS; rebinds and writes the record unless CHECK_MODE."""
    sysfs = Sysfs(params["sysfs_root"])
    record = _rebind.load_record(params["record"])
    events = _rebind.note_loads(sysfs, record, params["drivers"], _rebind.now_text())
    owners, note = _devices.hostdev_owners(params["uri"]) if record["pending"] else ({}, {"available": True})
    rebind, pending, dropped = _rebind.settle(sysfs, record, owners, note)
    for vf in dropped:
        del record["pending"][vf]
    result = {"events": events, "rebound": [], "pending": pending, "dropped": dropped, "record": params["record"],
              "changed": bool(events or rebind or dropped)}
    try:
        for vf, driver in rebind:
            if not check_mode:
                _rebind.rebind_vf(sysfs, vf, driver, params["timeout_s"])
            del record["pending"][vf]
            result["rebound"].append({"vf": vf, "driver": driver})
    finally:
        if result["changed"] and not check_mode:
            _rebind.save_record(params["record"], record)
    return result


def main():
    module = AnsibleModule(
        argument_spec=_args.merge({
            "drivers": {"type": "list", "elements": "str", "choices": list(_rebind.HOST_DRIVERS), "default": []},
            "record": {"type": "path", "default": "/var/lib/openeuler-kae/pf-driver-record.json"},
            "timeout_s": {"type": "float", "default": 10},
        }, _args.host_options()),
        supports_check_mode=True,
    )
    try:
        _args.check_shared(module.params)
        with host_lock("openeuler.kae.vf_rebind", module.params["timeout_s"]):
            result = settle_record(module.params, module.check_mode)
    except (_rebind.RebindError, _devices.DeviceError, LockTimeout, SysfsError, _validate.InputError) as exc:
        module.fail_json(msg=str(exc))
    for entry in result["pending"]:
        module.warn(entry["message"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
