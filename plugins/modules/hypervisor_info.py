#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: hypervisor_info
short_description: Read a hypervisor's free memory and vCPUs and its guests, in the shapes place_guests takes
version_added: 0.1.0
author: openEuler KAE collection contributors (@openeuler)
description:
  - Asks libvirt, without changing anything, for the host's free capacity and for the domains on it, and returns
    them as the O(openeuler.kae.place_guests#filter:capacity) entry and the
    O(openeuler.kae.place_guests#filter:guests) entries of P(openeuler.kae.place_guests#filter), so an evacuation
    plan can be made from what the hypervisors really run.
  - "Free memory is libvirt's free memory of the host (C(virNodeGetFreeMemory), the kernel's C(MemFree) summed over
    the NUMA cells), in whole MiB rounded down. Nothing is subtracted: page cache that the kernel could reclaim is
    not counted as free (the figure is on the safe side), free huge pages are not counted either (they are not in
    C(MemFree)), and no reserve is kept for the host itself; subtract a reserve in the play when the site keeps one."
  - Free vCPUs are the host's CPUs (C(virNodeGetInfo)) minus the current vCPUs of every running (active) domain,
    one host CPU per vCPU, and never less than 0. CPU overcommit is not applied; a site that overcommits computes
    its own figure from RV(totals) (RV(totals.cpus) x ratio - RV(totals.vcpus_used)). Domains that are defined but
    not running use no vCPUs.
  - A guest's C(memory_mib) is its maximum memory (the domain's C(<memory>), rounded up to whole MiB; a balloon
    does not lower what the destination must be able to hold), its C(vcpus) its current vCPU count, its
    C(pinned_node) the one NUMA node its C(<numatune><memory nodeset>) names (null when it names none or several),
    and its C(vfs) the host PCI addresses of every PCI device it holds (PCI C(<hostdev>) and
    C(<interface type='hostdev'>)), read from the running domain's live XML (the definition for a domain that is not
    running).
  - In the lab only, when O(sysfs_root) is a simulated tree (see M(openeuler.kae.device_info)'s RV(openeuler.kae.device_info#module:lab)),
    a guest's C(vfs) also lists the VFs its C(<metadata><kae:vfs>) names, as M(openeuler.kae.device_info) counts them.
  - "The module fails, naming the URI and the domain and quoting libvirt's error, when libvirt cannot be reached,
    the domains cannot be listed or one domain cannot be read. It never returns a partial list: a host whose
    guests could not be read is not a host without guests."
extends_documentation_fragment:
  - openeuler.kae.attributes
  - openeuler.kae.attributes.INFO_MODULE
  - openeuler.kae._libvirt
  - openeuler.kae._sysfs
options:
  host_name:
    description:
      - The name the host has in the facts given to P(openeuler.kae.place_guests#filter), written as C(host) into
        every guest entry and as the key of RV(capacity). A module cannot see the inventory, so pass
        C("{{ inventory_hostname }}").
    type: str
    required: true
  active_only:
    description:
      - Only domains that run (are active); with V(false) also the domains that are defined but not running.
      - Free vCPUs count the running domains either way.
    type: bool
    default: true
  kae_only:
    description:
      - Only domains that hold at least one of the KAE VFs in O(devices) (the guests an evacuation of KAE guests
        moves). Needs O(devices).
      - Free vCPUs count every running domain either way.
    type: bool
    default: false
  devices:
    description:
      - The host's KAE devices, as M(openeuler.kae.device_info) returns them (RV(openeuler.kae.device_info#module:devices));
        the addresses of its VFs are the KAE VFs for O(kae_only).
      - Read only with O(kae_only=true); given without it, the module fails rather than ignore it.
    type: list
    elements: dict
attributes:
  platform:
    platforms: posix
    description: Runs on the hypervisor (or anywhere O(uri) reaches it).
    support: full
notes:
  - A guest that holds a PCI device other than a KAE VF is listed with that device in its C(vfs);
    P(openeuler.kae.place_guests#filter) refuses it (such a guest cannot be live migrated with its device).
  - A domain listed with O(active_only=false) that is not running is a guest of the plan too; leave it out of the
    guests given to P(openeuler.kae.place_guests#filter) when only running guests move.
seealso:
  - plugin: openeuler.kae.place_guests
    plugin_type: filter
  - module: openeuler.kae.device_info
"""

EXAMPLES = r"""
- name: Read this hypervisor's free capacity and its KAE guests
  openeuler.kae.hypervisor_info:
    host_name: "{{ inventory_hostname }}"
    kae_only: true
    devices: "{{ host_kae.devices }}"
  register: hv

- name: Plan the evacuation of hv03 from every hypervisor's facts, capacity and guests
  ansible.builtin.set_fact:
    evacuation: >-
      {{ fleet_kae | openeuler.kae.place_guests(guests=hostvars['hv03'].hv.guests, capacity=fleet_capacity,
      maintenance=['hv03']) }}
  run_once: true
  vars:
    fleet: "{{ groups['kae_hypervisors'] }}"
    fleet_kae: "{{ dict(fleet | zip(fleet | map('extract', hostvars, 'host_kae'))) }}"
    fleet_capacity: "{{ fleet | map('extract', hostvars, ['hv', 'capacity']) | combine }}"

- name: Every domain, running or not, on a remote hypervisor
  openeuler.kae.hypervisor_info:
    uri: qemu+ssh://root@hv04/system
    host_name: hv04
    active_only: false
"""

RETURN = r"""
host:
  description: O(host_name).
  returned: always
  type: str
  sample: kae-lab-a
uri:
  description: O(uri).
  returned: always
  type: str
  sample: qemu:///system
capacity:
  description:
    - This host's entry of O(openeuler.kae.place_guests#filter:capacity), keyed by O(host_name), so that the
      results of many hosts C(combine) into the filter's whole argument.
  returned: always
  type: dict
  sample: {"kae-lab-a": {"memory_mib": 5312, "vcpus": 0}}
totals:
  description: The figures the capacity comes from.
  returned: always
  type: dict
  contains:
    memory_mib:
      description: The host's memory, MiB.
      type: int
      sample: 7680
    cpus:
      description: The host's CPUs (active logical CPUs).
      type: int
      sample: 2
    free_memory_mib:
      description: Free memory, MiB (rounded down); RV(capacity)'s C(memory_mib).
      type: int
      sample: 5312
    vcpus_used:
      description: The vCPUs of all running domains together.
      type: int
      sample: 2
    active_domains:
      description: The number of running domains.
      type: int
      sample: 1
  sample: {"memory_mib": 7680, "cpus": 2, "free_memory_mib": 5312, "vcpus_used": 2, "active_domains": 1}
guests:
  description:
    - The domains (those O(active_only) and O(kae_only) keep), sorted by name, as entries of
      O(openeuler.kae.place_guests#filter:guests); C(host) is O(host_name).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Domain name.
      type: str
    host:
      description: O(host_name).
      type: str
    memory_mib:
      description: Maximum memory, MiB (rounded up).
      type: int
    vcpus:
      description: Current vCPUs.
      type: int
    pinned_node:
      description: The one NUMA node C(<numatune>) binds the memory to; null when none or several.
      type: int
    vfs:
      description: Host PCI addresses of the PCI devices passed through to the domain (in the lab, and those its
        C(<metadata><kae:vfs>) names).
      type: list
      elements: str
  sample:
    - {"name": "kae-guest", "host": "kae-lab-a", "memory_mib": 512, "vcpus": 1, "pinned_node": 0, "vfs": ["0000:75:00.1"]}
states:
  description:
    - The state of each domain of RV(guests), as libvirt names it (V(running), V(paused), V(shutoff), ...). Kept
      out of RV(guests) because P(openeuler.kae.place_guests#filter) refuses keys it does not know.
  returned: always
  type: dict
  sample: {"kae-guest": "running"}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.openeuler.kae.plugins.module_utils import _args
from ansible_collections.openeuler.kae.plugins.module_utils import _devices
from ansible_collections.openeuler.kae.plugins.module_utils import _hypervisor
from ansible_collections.openeuler.kae.plugins.module_utils import _libvirt
from ansible_collections.openeuler.kae.plugins.module_utils import _validate
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs, SysfsError


def argument_spec():
    return _args.merge(_args.host_options(), dict(
        host_name=dict(type="str", required=True),
        active_only=dict(type="bool", default=True),
        kae_only=dict(type="bool", default=False),
        devices=dict(type="list", elements="dict"),
    ))


def kae_vfs(params):
    """The KAE VF addresses O(kae_only) keeps domains by, or None when every domain is kept."""
    if not params["kae_only"]:
        return None
    try:
        devices = _devices.check_devices(params["devices"])
    except _devices.DeviceError as exc:
        raise _validate.InputError(str(exc)) from None
    return _hypervisor.kae_vf_addresses(devices)


def validate(params):
    """Check the options before libvirt is opened; raises _validate.InputError."""
    _args.check_shared(params)
    if "://" not in params["uri"]:
        raise _validate.InputError("uri must be a libvirt URI such as qemu:///system, got %r" % params["uri"])
    _validate.text(params["host_name"], "host_name (the host's inventory name, for example \"{{ inventory_hostname }}\")")
    if params["kae_only"] and params["devices"] is None:
        raise _validate.InputError("kae_only needs devices: pass the host's device_info devices (devices: \"{{ host_kae.devices }}\")")
    if not params["kae_only"] and params["devices"] is not None:
        raise _validate.InputError("devices is read only with kae_only: true (to keep the domains holding those KAE VFs); "
                                   "set kae_only: true or leave devices out")


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        validate(params)
        vfs = kae_vfs(params)
    except _validate.InputError as exc:
        module.fail_json(msg=str(exc))
    if not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib(_libvirt.LIBRARY_NAME), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    try:
        conn = _libvirt.connect(params["uri"], read_only=True)
    except _libvirt.LibvirtFailure as exc:
        module.fail_json(msg=str(exc))
    try:
        lab = _devices.is_lab_tree(Sysfs(params["sysfs_root"]))
        result = _hypervisor.read_host(conn, params["uri"], params["host_name"], params["active_only"], vfs, lab)
    except _hypervisor.HypervisorError as exc:
        module.fail_json(msg=str(exc))
    except SysfsError as exc:
        module.fail_json(msg="cannot read the sysfs tree at %s: %s" % (params["sysfs_root"], exc))
    finally:
        conn.close()
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
