#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hostdev_remap
short_description: Compute a migrating guest's XML for a destination whose free KAE VFs sit at other addresses
version_added: 0.1.0
description:
  - Runs on the source hypervisor (O(uri)). Reads the running guest's migratable XML and maps each of its KAE VF hostdevs to
    a free VF of the same engine on the destination, all on one NUMA node of the destination (the node the guest's
    C(<numatune>) pins it to, if any; else the source VFs' node when it can, else the first node that can).
  - When every VF address of the guest is a free VF of the same engine on the destination, the guest keeps its
    addresses and RV(destination_xml) is null.
  - With O(domain_xml) instead of O(domain), works on that XML alone (no libvirt needed), for example to check before
    a migration, or in a lab without passthrough, whether a destination can host a definition's VFs.
  - Only a destination VF of the same queue class as the guest's VF qualifies (RV(openeuler.kae.device_info#module:devices[].queue_class),
    that is the same C(pf_q_num), the same C(sriov_numvfs) on its PF, last VF of its PF or not), because the destination
    driver refuses a VF whose queue count differs.
  - Fails, naming what is missing on which node and, when the queue class is the reason, each guest VF's class and
    the classes of the destination's free VFs, when the destination cannot host the guest's VFs, or when the
    guest holds a PCI hostdev that is not a KAE VF of the source.
  - In the lab only, when O(sysfs_root) is a simulated tree (see M(openeuler.kae.device_info)'s
    RV(openeuler.kae.device_info#module:lab)), the VFs the guest's C(<metadata><kae:vfs>) names are its VFs as well,
    mapped the same way, and RV(destination_xml) and RV(persistent_xml) carry the rewritten C(<kae:vfs>), so that the
    guest's simulated holdings on the destination are VFs free there. Elsewhere that metadata is ignored.
  - Refuses to choose the destination's VFs when its device facts say that VF ownership could not be read
    (RV(openeuler.kae.device_info#module:devices[].owner_known=false), libvirt unreachable there), since a VF whose
    domain is unknown may be a guest's.
  - Pass RV(destination_xml) to M(openeuler.kae.live_migration)'s O(openeuler.kae.live_migration#module:destination_xml)
    and RV(persistent_xml) to its O(openeuler.kae.live_migration#module:persistent_xml).
author:
  - openEuler KAE collection contributors (@openeuler)
requirements:
  - libvirt-python (python3-libvirt) on the managed host
extends_documentation_fragment:
  - openeuler.kae.attributes
  - openeuler.kae.attributes.INFO_MODULE
  - openeuler.kae._libvirt
  - openeuler.kae._sysfs
options:
  domain:
    description: Name of the running libvirt domain to migrate. One of O(domain) and O(domain_xml) is required.
    type: str
  domain_xml:
    description:
      - A domain XML to remap instead of the running domain's. RV(destination_xml) is then this XML remapped and
        RV(persistent_xml) is null.
    type: str
  source_devices:
    description: The source host's RV(openeuler.kae.device_info#module:devices), to learn the engine of each of the guest's VFs.
    type: list
    elements: dict
    required: true
  destination_devices:
    description:
      - The destination host's RV(openeuler.kae.device_info#module:devices). A VF counts as free when libvirt said that
        no domain holds it (or only this guest, whose definition may be left on the destination from an earlier round),
        it is bound to a migration driver and its hardware supports migration.
    type: list
    elements: dict
    required: true
  destination_host:
    description: Name of the destination host, used in the messages that say why it cannot host the guest's VFs.
    type: str
  allowed_vfs:
    description:
      - Only these destination VFs may be given to the guest (still only when free, of the right engine and queue
        class, on one NUMA node); every other VF of the destination counts as held.
      - An evacuation passes the VFs its plan chose for the guest (P(openeuler.kae.evacuation_plan#filter)), so that
        migrations into one host that run at the same moment, each reading the destination's facts before the others
        took their VFs, never choose the same VF.
      - Not given, any free VF qualifies.
    type: list
    elements: str
seealso:
  - module: openeuler.kae.live_migration
  - module: openeuler.kae.device_info
"""

EXAMPLES = r"""
- name: Can hv-b host the VFs of this definition? (no libvirt call)
  openeuler.kae.hostdev_remap:
    domain_xml: "{{ lookup('ansible.builtin.file', 'vm1.xml') }}"
    source_devices: "{{ hostvars['hv-a'].kae_devices.devices }}"
    destination_devices: "{{ hostvars['hv-b'].kae_devices.devices }}"
  register: remap_check

- name: Read the KAE devices of both hosts
  openeuler.kae.device_info:
  register: kae_facts
  delegate_to: "{{ item }}"
  loop: [hv-a, hv-b]

- name: Give kae-guest free VFs of hv-b
  openeuler.kae.hostdev_remap:
    domain: kae-guest
    source_devices: "{{ kae_facts.results[0].devices }}"
    destination_devices: "{{ kae_facts.results[1].devices }}"
  register: remap
  delegate_to: hv-a

- name: Migrate with the remapped hostdevs
  openeuler.kae.live_migration:
    domain: kae-guest
    destination_uri: qemu+ssh://hv-b/system
    destination_xml: "{{ remap.destination_xml | default(omit, true) }}"
  delegate_to: hv-a
"""

RETURN = r"""
remapped:
  description: Whether any VF address changes on the destination.
  returned: success
  type: bool
  sample: true
mapping:
  description: Source VF address to destination VF address, for every KAE hostdev of the guest (in the lab, and every
    VF of its C(<kae:vfs>)).
  returned: success
  type: dict
  sample: {"0000:31:00.1": "0000:31:00.2", "0000:76:00.1": "0000:76:00.1"}
numa_node:
  description: The destination NUMA node of the guest's VFs; null when the guest has no KAE VF.
  returned: success
  type: int
  sample: 0
destination_xml:
  description: The guest's migratable live XML with the hostdevs remapped; null when nothing is remapped.
  returned: success
  type: str
persistent_xml:
  description: The guest's migratable persistent XML with the hostdevs remapped; null when nothing is remapped.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.openeuler.kae.plugins.module_utils import _args, _libvirt, _validate
from ansible_collections.openeuler.kae.plugins.module_utils._domain_xml import DomainXMLError
from ansible_collections.openeuler.kae.plugins.module_utils._devices import is_lab_tree
from ansible_collections.openeuler.kae.plugins.module_utils._remap import RemapError, migration_remap
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs, SysfsError

# Without libvirt-python (a given domain_xml needs none) no libvirt error can occur.
LIBVIRT_ERRORS = (_libvirt.libvirt.libvirtError,) if _libvirt.HAS_LIBVIRT else ()


def guest_xmls(params):
    """(live migratable XML, persistent migratable XML or None) of the running guest."""
    # libvirt refuses VIR_DOMAIN_XML_MIGRATABLE on a read-only connection; nothing is written.
    conn = _libvirt.connect(params["uri"])
    try:
        domain = _libvirt.lookup_domain(conn, params["domain"])
        if domain is None or not domain.isActive():
            raise RemapError("domain %s is not running on %s; a destination remap is for a guest about to migrate from there"
                             % (params["domain"], params["uri"]))
        flags = _libvirt.libvirt.VIR_DOMAIN_XML_MIGRATABLE
        live = domain.XMLDesc(flags)
        persistent = domain.XMLDesc(flags | _libvirt.libvirt.VIR_DOMAIN_XML_INACTIVE) if domain.isPersistent() else None
        return live, persistent
    finally:
        conn.close()


def check_params(params):
    """InputError naming the option when one has the wrong form."""
    _args.check_shared(params)
    if params["domain_xml"] is not None:
        _validate.text(params["domain_xml"], "domain_xml")
    for index, bdf in enumerate(params.get("allowed_vfs") or []):
        _validate.bdf(bdf, "allowed_vfs[%d]" % index)


def run(params):
    check_params(params)
    if params["domain_xml"] is not None:
        live, persistent = params["domain_xml"], None
    else:
        live, persistent = guest_xmls(params)
    lab = is_lab_tree(Sysfs(params.get("sysfs_root", _args.DEFAULT_SYSFS_ROOT)))
    return migration_remap(live, persistent, params["source_devices"], params["destination_devices"],
                           destination=params.get("destination_host"), allowed=params.get("allowed_vfs"), lab=lab)


def main():
    module = AnsibleModule(
        argument_spec=_args.merge(_args.domain_option(required=False), _args.host_options(), dict(
            domain_xml=dict(type="str"),
            source_devices=dict(type="list", elements="dict", required=True),
            destination_devices=dict(type="list", elements="dict", required=True),
            destination_host=dict(type="str"),
            allowed_vfs=dict(type="list", elements="str"),
        )),
        required_one_of=[("domain", "domain_xml")],
        mutually_exclusive=[("domain", "domain_xml")],
        supports_check_mode=True,
    )
    if not _libvirt.HAS_LIBVIRT and module.params["domain_xml"] is None:
        module.fail_json(msg=missing_required_lib(_libvirt.LIBRARY_NAME), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    try:
        result = run(module.params)
    except (RemapError, DomainXMLError, _libvirt.LibvirtFailure, _validate.InputError) as exc:
        module.fail_json(msg=str(exc))
    except SysfsError as exc:
        module.fail_json(msg="cannot read the sysfs tree at %s: %s" % (module.params["sysfs_root"], exc))
    except LIBVIRT_ERRORS as exc:
        module.fail_json(msg="cannot read the XML of domain %s on %s: %s"
                         % (module.params["domain"], module.params["uri"], _libvirt.error_text(exc)))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
