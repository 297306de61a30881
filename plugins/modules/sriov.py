#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sriov
short_description: Ensure a KAE PF has N VFs bound to the live-migration driver
version_added: 0.1.0
description:
  - Sets the number of virtual functions of one KAE physical function (ZIP, SEC or HPRE) through its
    C(sriov_numvfs) and binds every VF to the driver that supports live migration.
  - Changing a non-zero count goes through V(0), as the driver requires. When the new count then fails, the module
    restores the previous VFs and their drivers when it can, and the error says which state the PF is left in.
  - It never removes, unbinds or rebinds a VF that a libvirt domain holds, running or only defined. Before a count
    change (which removes every VF) or a rebind it asks libvirt (O(uri), read-only), and fails naming each held VF and its domain when
    one is held, or when libvirt cannot be asked, without writing anything.
  - New VFs are created with the PF's C(sriov_drivers_autoprobe) at V(0), so they never bind to the host driver
    first (the value found is put back afterwards). With O(driver=none) the kernel's own binding is left alone.
  - Binding writes the driver to the VF's C(driver_override) and the VF to C(bus/pci/drivers_probe), after
    unbinding it from its current driver.
  - The read, decision and writes run under the host's lock (C(/run/lock/openeuler-kae.lock)), so two plays
    cannot interleave a PF's VF change; the module waits at most O(timeout_s) seconds for it. Check mode, which
    writes nothing, takes no lock.
  - The PF must stay bound to its host driver (C(hisi_zip), C(hisi_sec2), C(hisi_hpre)); otherwise its VFs silently
    lose migration support, so the module fails and says how to fix it before changing anything.
  - The kernel creates VFs and binds drivers; after every write the module waits, at most O(timeout_s) seconds,
    until the tree shows the result.
  - The role P(openeuler.kae.host#role) runs this module on every PF of a hypervisor.
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
      - New VF addresses are predicted from the PF's C(sriov_offset) and C(sriov_stride).
  diff_mode:
    support: full
options:
  pf:
    description:
      - PCI address of the PF in the kernel's form C(DDDD:BB:SS.F), for example V(0000:75:00.0).
    type: str
    required: true
  num_vfs:
    description:
      - Number of VFs the PF must have (V(0) removes them all). At most the PF's C(sriov_totalvfs).
      - Source and destination hosts need the same count on matching PFs.
    type: int
    required: true
  driver:
    description:
      - Driver the VFs must be bound to.
      - V(hisi_acc_vfio_pci) is the openEuler 24.03 / upstream variant driver (it never binds by itself).
      - V(vfio-pci) is the openEuler 22.03 way and needs the C(hisi_migration) module loaded.
      - V(auto) picks V(hisi_acc_vfio_pci) when that driver is loaded, else V(vfio-pci).
      - V(none) leaves the VFs bound to whatever the kernel chose.
    type: str
    choices: [auto, hisi_acc_vfio_pci, vfio-pci, none]
    default: auto
  timeout_s:
    description:
      - Seconds to wait for the host lock, and for the kernel after each write (VFs to appear or go, a driver to bind).
      - Greater than 0 and at most 3600.
    type: float
    default: 10
requirements:
  - libvirt-python (python3-libvirt) on the managed host, when existing VFs would be removed or rebound (the module fails
    without it then).
seealso:
  - module: openeuler.kae.device_info
"""

EXAMPLES = r"""
- name: Four VFs on the ZIP PF of node 0, bound for migration
  openeuler.kae.sriov:
    pf: "0000:75:00.0"
    num_vfs: 4

- name: openEuler 22.03 style binding
  openeuler.kae.sriov:
    pf: "0000:76:00.0"
    num_vfs: 4
    driver: vfio-pci

- name: Every PF the host has
  openeuler.kae.sriov:
    pf: "{{ item.bdf }}"
    num_vfs: 4
  loop: "{{ kae.devices | selectattr('function', 'eq', 'pf') }}"
  loop_control:
    label: "{{ item.bdf }}"
"""

RETURN = r"""
pf:
  description: The PF.
  returned: always
  type: str
  sample: "0000:75:00.0"
engine:
  description: The PF's engine.
  returned: always
  type: str
  sample: zip
driver:
  description: The driver the VFs are bound to, V(null) for O(driver=none).
  returned: always
  type: str
  sample: hisi_acc_vfio_pci
num_vfs:
  description: VFs the PF has now (in check mode, would have).
  returned: always
  type: int
  sample: 4
vfs:
  description: Each VF and its driver now (in check mode, predicted).
  returned: always
  type: dict
  sample: {"0000:75:00.1": hisi_acc_vfio_pci, "0000:75:00.2": hisi_acc_vfio_pci}
diff:
  description: Before and after states, with keys C(num_vfs) and C(vfs) (VF to driver).
  returned: when O(ignore:diff) mode is on
  type: dict
"""

import contextlib

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.openeuler.kae.plugins.module_utils import _args, _devices, _hostlock, _validate
from ansible_collections.openeuler.kae.plugins.module_utils._libvirt import LIBRARY_NAME, LIBVIRT_IMPORT_ERROR
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs, SysfsError

MAX_TIMEOUT_S = 3600
LOCK_DIR = _hostlock.DEFAULT_LOCK_DIR
ARGUMENT_SPEC = _args.merge({
    "pf": {"type": "str", "required": True},
    "num_vfs": {"type": "int", "required": True},
    "driver": {"type": "str", "default": "auto", "choices": ["auto", "hisi_acc_vfio_pci", "vfio-pci", "none"]},
    "timeout_s": {"type": "float", "default": 10},
}, _args.host_options())


def check_params(params):
    """The module's parameters in canonical form; InputError naming the option when one has the wrong form."""
    checked = dict(_args.check_shared(params))
    checked["pf"] = _validate.bdf(params["pf"], "pf")
    checked["num_vfs"] = _validate.number(params["num_vfs"], "num_vfs", minimum=0, maximum=_devices.MAX_COUNT, integer=True)
    checked["timeout_s"] = _validate.positive(params["timeout_s"], "timeout_s", maximum=MAX_TIMEOUT_S)
    return checked


def ensure(sysfs, params, check_mode):
    """(changed, before, after, pf, driver, warnings) for the module's (checked) parameters."""
    num_vfs = params["num_vfs"]
    pf = _devices.read_pf(sysfs, params["pf"])
    _devices.check_pf_driver(pf)
    driver = _devices.choose_driver(sysfs, params["driver"])
    _devices.check_count(pf, num_vfs)
    warnings = []
    if driver and not pf["migratable_hw"]:
        warnings.append("PF %s has revision %s: live migration needs revision 0x30 (QM v3) hardware, so its VFs will not migrate"
                        % (pf["bdf"], pf["revision"]))
    before = _devices.vf_state(sysfs, pf["bdf"])
    after = _devices.predict_state(sysfs, pf, before, num_vfs, driver)
    changed = after != before
    if changed:
        _devices.check_change(sysfs, pf, before, num_vfs, driver, params["uri"])
        if not check_mode:
            after = _devices.apply_state(sysfs, pf, before, num_vfs, driver, params["timeout_s"])
    return changed, before, after, pf, driver, warnings


def run(params, check_mode):
    """ensure() on checked PARAMS; outside check mode under the host lock, so the read, decision and writes are one step."""
    params = check_params(params)
    what = "openeuler.kae.sriov on PF %s" % params["pf"]
    lock = contextlib.nullcontext() if check_mode else _hostlock.host_lock(what, params["timeout_s"], lock_dir=LOCK_DIR)
    with lock:
        return ensure(Sysfs(params["sysfs_root"]), params, check_mode)


def main():
    # Numbers given as text are screened before ansible-core converts them (it hangs on '1e99999999', raises on 'inf').
    spec, problem = _validate.screen_number_options(basic._load_params(), ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if problem:
        module.fail_json(msg=problem)
    try:
        changed, before, after, pf, driver, warnings = run(module.params, module.check_mode)
    except _devices.LibvirtMissing as exc:
        module.fail_json(msg=missing_required_lib(LIBRARY_NAME, reason=str(exc)), exception=LIBVIRT_IMPORT_ERROR)
    except (_devices.DeviceError, SysfsError, _validate.InputError, _hostlock.LockTimeout) as exc:
        module.fail_json(msg=str(exc), pf=module.params["pf"])
    except OSError as exc:
        module.fail_json(msg="openeuler.kae.sriov failed on PF %s: %s" % (module.params["pf"], exc), pf=module.params["pf"])
    for warning in warnings:
        module.warn(warning)
    result = {"changed": changed, "pf": pf["bdf"], "engine": pf["engine"], "driver": driver,
              "num_vfs": after["num_vfs"], "vfs": after["vfs"]}
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
