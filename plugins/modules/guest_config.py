#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: guest_config
short_description: Make a guest's definition hold exactly the wanted KAE VFs, QEMU trace arguments and NUMA placement
version_added: 0.1.0
description:
  - Edits the persistent definition of an existing libvirt domain so that it is ready for KAE passthrough live
    migration (steps 1 and 2 of the openEuler procedure), and leaves everything else in the XML untouched.
  - Its PCI hostdevs that are KAE VFs become exactly those given in O(hostdev_xml); the C(--trace) arguments of
    the trace profiles in C(<qemu:commandline>) become those of O(trace_profile) (the C(qemu) XML namespace is
    declared when missing, other arguments are kept); memory and vCPUs are optionally pinned to one NUMA node.
  - Refuses a domain holding any other passthrough device (a PCI hostdev that is not a KAE VF, a USB, SCSI or
    mediated hostdev, an C(<interface type='hostdev'>)), naming it, unless O(remove_foreign_passthrough=true).
  - Idempotent by comparing the inactive XML (C(VIR_DOMAIN_XML_INACTIVE)) before and after.
  - A running guest sees the new definition only after it restarts (QEMU reads trace arguments and hostdevs at
    start). The module says so in RV(restart_required) or restarts it with O(restart=true).
  - The C(<hostdev>) elements are rendered by the template C(hostdev.xml.j2) of the role C(openeuler.kae.guest),
    the one place that knows the element's shape for each release (see EXAMPLES).
author:
  - openEuler KAE collection contributors (@openeuler)
requirements:
  - libvirt-python (python3-libvirt) on the managed host
extends_documentation_fragment:
  - openeuler.kae.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the inactive domain XML before and after.
options:
  name:
    description: Name of the libvirt domain. It must already be defined on O(uri).
    type: str
    required: true
  uri:
    description: libvirt connection URI of the hypervisor holding the domain.
    type: str
    default: qemu:///system
  hostdev_xml:
    description:
      - XML text of the C(<hostdev mode='subsystem' type='pci'>) elements the domain must hold for its KAE VFs, as
        rendered by the guest role's C(hostdev.xml.j2). Zero elements (an empty string) removes every KAE hostdev.
      - The attributes and child elements given replace those of a hostdev with the same host address; what libvirt
        adds (the guest-side C(<address>), C(<alias>)) is kept.
      - Omit to leave the hostdevs alone.
    type: str
  sysfs_root:
    description:
      - Root of the sysfs tree used to tell KAE VFs (vendor C(0x19e5), ZIP/SEC/HPRE VF device ids) from other PCI
        devices among the domain's hostdevs. Tests and the lab point it at a sysfs-shaped tree.
    type: path
    default: /sys
  trace_profile:
    description:
      - Which QEMU trace events the guest's QEMU prints to its log (C(--trace PATTERN) arguments, one per profile),
        as needed to measure downtime with M(openeuler.kae.qemu_trace_events).
      - V(openeuler) (C(all_vcpus*), openEuler's QEMU), V(upstream) (C(vm_state_notify)), V(downtime_checkpoint)
        (C(vmstate_downtime_checkpoint), QEMU 8.2 or later), V(both) (openEuler and upstream; a pattern that matches
        nothing is ignored by QEMU), V(none) (remove the arguments this module manages).
      - Omit to leave the trace arguments alone.
    type: str
    choices: [openeuler, upstream, downtime_checkpoint, both, none]
  placement:
    description:
      - How to pin the guest to the VFs' NUMA node O(numa_node). V(none) leaves placement alone.
      - V(numatune) binds memory to the node (C(<numatune><memory mode='strict'>)).
      - V(vcpu) does that and restricts all vCPUs to the node's CPUs (C(<vcpu cpuset>)).
      - V(cputune) does that with one C(<vcpupin>) per vCPU and an C(<emulatorpin>) on the node's CPUs.
      - The node's CPUs come from the host's libvirt capabilities. Pins set earlier are not removed when a weaker
        placement is chosen later.
    type: str
    choices: [none, numatune, vcpu, cputune]
    default: none
  numa_node:
    description: NUMA node the guest's KAE VFs sit on. Required unless O(placement=none).
    type: int
  remove_foreign_passthrough:
    description:
      - Remove passthrough devices that are not KAE VFs instead of refusing the domain. KAE passthrough live
        migration allows no other passthrough device in the guest.
    type: bool
    default: false
  restart:
    description:
      - Restart a running guest when its definition changed, so that the change takes effect. The guest is asked to
        shut down and is powered off when it has not stopped after O(restart_timeout_s) seconds.
      - When false, a running guest keeps its old configuration until its next start and RV(restart_required) says so.
    type: bool
    default: false
  restart_timeout_s:
    description: Seconds to wait for a graceful shutdown before powering the guest off. V(0) powers it off at once.
    type: int
    default: 60
  skip_missing:
    description:
      - When the domain is not defined on O(uri), report RV(defined=false) and change nothing instead of failing
        (for plays that run on every hypervisor of a pair while the guest is defined on one).
    type: bool
    default: false
seealso:
  - module: openeuler.kae.device_info
  - module: openeuler.kae.hostdev_remap
"""

EXAMPLES = r"""
- name: Give kae-guest one ZIP, SEC and HPRE VF, openEuler trace events, memory on node 0
  openeuler.kae.guest_config:
    name: kae-guest
    hostdev_xml: |
      <hostdev mode='subsystem' type='pci' managed='yes' migration='on'>
        <driver name='vfio'/>
        <source><address domain='0x0000' bus='0x31' slot='0x00' function='0x1'/></source>
      </hostdev>
      <hostdev mode='subsystem' type='pci' managed='yes' migration='on'>
        <driver name='vfio'/>
        <source><address domain='0x0000' bus='0x76' slot='0x00' function='0x1'/></source>
      </hostdev>
      <hostdev mode='subsystem' type='pci' managed='yes' migration='on'>
        <driver name='vfio'/>
        <source><address domain='0x0000' bus='0x79' slot='0x00' function='0x1'/></source>
      </hostdev>
    trace_profile: openeuler
    placement: numatune
    numa_node: 0

- name: Only the trace arguments (upstream QEMU), restarting the guest so that QEMU prints them
  openeuler.kae.guest_config:
    name: kae-guest
    trace_profile: upstream
    restart: true

- name: Render the hostdevs with the guest role's template (the role does this for you)
  openeuler.kae.guest_config:
    name: kae-guest
    hostdev_xml: "{{ lookup('ansible.builtin.template', 'hostdev.xml.j2', template_vars={'guest_hostdev_vfs': ['0000:31:00.1']}) }}"
"""

RETURN = r"""
defined:
  description: Whether the domain is defined on O(uri) (V(false) only with O(skip_missing=true)).
  returned: always
  type: bool
  sample: true
restart_required:
  description: The guest is running with an older configuration; the change takes effect at its next start.
  returned: always
  type: bool
  sample: true
restarted:
  description: The guest was restarted to apply the change (O(restart=true)).
  returned: always
  type: bool
  sample: false
hostdevs:
  description: Host PCI addresses of the KAE hostdevs added, removed and updated (attributes changed).
  returned: when the domain is defined on O(uri)
  type: dict
  sample: {"added": ["0000:31:00.1"], "removed": [], "updated": []}
trace:
  description: C(--trace) patterns added and removed, and the patterns the definition holds afterwards.
  returned: when the domain is defined on O(uri)
  type: dict
  sample: {"added": ["all_vcpus*"], "removed": [], "patterns": ["all_vcpus*"]}
placement:
  description: Placement elements changed (C(numatune), C(vcpu), C(cputune)).
  returned: when the domain is defined on O(uri)
  type: list
  elements: str
  sample: ["numatune"]
removed_foreign_passthrough:
  description: Passthrough devices removed because they are not KAE VFs (O(remove_foreign_passthrough=true)).
  returned: when the domain is defined on O(uri)
  type: list
  elements: str
  sample: ["<hostdev mode='subsystem' type='pci'> (host PCI 0000:41:00.0)"]
xml:
  description: The inactive domain XML after the change (in check mode, the prediction), as ElementTree writes it.
  returned: when the domain is defined on O(uri)
  type: str
msg:
  description: What was done, and whether the guest must restart.
  returned: always
  type: str
  sample: "kae-guest: definition updated; the running guest uses it after its next restart (or set restart=true)"
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx
from ansible_collections.openeuler.kae.plugins.module_utils import _libvirt
from ansible_collections.openeuler.kae.plugins.module_utils._devices import read_device
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs
from ansible_collections.openeuler.kae.plugins.module_utils._trace import AUTO_ORDER, PROFILE_BY_NAME, PROFILES

# Every --trace pattern this module owns; others in <qemu:commandline> are left alone.
MANAGED_PATTERNS = tuple(row.trace_pattern for row in PROFILES)
TRACE_CHOICES = tuple(PROFILE_BY_NAME) + ("both", "none")
RESTART_POLL_S = 0.5


class GuestConfigError(Exception):
    """The request cannot be applied; nothing was changed."""


def wanted_patterns(profile):
    """--trace patterns for a trace_profile value."""
    if profile == "none":
        return []
    names = AUTO_ORDER if profile == "both" else (profile,)
    return [PROFILE_BY_NAME[name].trace_pattern for name in names]


def desired_definition(current_xml, params, is_kae, capabilities):
    """Apply the requested edits to the inactive XML; returns (root, report). Pure apart from CAPABILITIES()."""
    root = dx.parse_domain(current_xml)
    report = {"hostdevs": {"added": [], "removed": [], "updated": []}, "trace": {"added": [], "removed": []},
              "placement": [], "removed_foreign_passthrough": []}
    wanted = dx.parse_hostdev_fragments(params["hostdev_xml"]) if params["hostdev_xml"] is not None else None
    wanted_bdfs = set(bdf for _element, bdf in wanted or [])
    foreign = [elem for elem in dx.foreign_passthrough(root, is_kae) if dx.hostdev_bdf(elem) not in wanted_bdfs]
    if foreign and not params["remove_foreign_passthrough"]:
        raise GuestConfigError(
            "domain %s holds passthrough devices that are not KAE VFs: %s. KAE live migration allows no other "
            "passthrough device; remove them or set remove_foreign_passthrough=true"
            % (params["name"], "; ".join(dx.describe_element(elem) for elem in foreign)))
    dx.remove_elements(root, foreign)
    report["removed_foreign_passthrough"] = [dx.describe_element(elem) for elem in foreign]
    if wanted is not None:
        report["hostdevs"] = dx.set_kae_hostdevs(root, wanted, is_kae)
    if params["trace_profile"] is not None:
        report["trace"] = dx.set_trace_args(root, wanted_patterns(params["trace_profile"]), MANAGED_PATTERNS)
    if params["placement"] != "none":
        cpus = dx.node_cpus(capabilities(), params["numa_node"]) if params["placement"] != "numatune" else None
        report["placement"] = dx.set_placement(root, params["placement"], params["numa_node"], cpus)
    report["trace"]["patterns"] = [p for p in dx.trace_patterns(root) if p in MANAGED_PATTERNS]
    return root, report


def dropped_by_libvirt(defined_xml, params, is_kae, capabilities):
    """Warnings for what libvirt did not keep of the definition just written (a second pass would change it again)."""
    _root, again = desired_definition(defined_xml, params, is_kae, capabilities)
    warnings = []
    if again["hostdevs"]["updated"] or again["hostdevs"]["added"]:
        warnings.append(
            "libvirt on %s did not keep all attributes of hostdevs %s (upstream libvirt has no migration='on' "
            "attribute and drops it): render the hostdevs without it (guest_hostdev_migration_attr: false)"
            % (params["uri"], ", ".join(again["hostdevs"]["updated"] + again["hostdevs"]["added"])))
    if again["trace"]["added"]:
        warnings.append(
            "libvirt on %s did not keep the <qemu:commandline> trace arguments (%s); only the QEMU driver keeps them"
            % (params["uri"], ", ".join(again["trace"]["added"])))
    if again["placement"]:
        warnings.append("libvirt on %s did not keep the placement elements %s" % (params["uri"], ", ".join(again["placement"])))
    return warnings


def restart_domain(domain, timeout_s):
    """Shut the guest down (power off after TIMEOUT_S) and start it again."""
    if timeout_s > 0:
        domain.shutdown()
        deadline = time.monotonic() + timeout_s
        while domain.isActive() and time.monotonic() < deadline:
            time.sleep(RESTART_POLL_S)
    if domain.isActive():
        domain.destroy()
    domain.create()


def inactive_xml(domain):
    return domain.XMLDesc(_libvirt.libvirt.VIR_DOMAIN_XML_INACTIVE)


def kae_vf_checker(sysfs_root):
    """is_kae(bdf): whether the host's PCI device BDF is a KAE VF, read from the sysfs tree."""
    sysfs = Sysfs(sysfs_root)

    def is_kae(bdf):
        device = read_device(sysfs, bdf)
        return device is not None and device["function"] == "vf"
    return is_kae


def run(params, check_mode, is_kae=None):
    """Do the work; returns the module result. Raises GuestConfigError / LibvirtFailure / DomainXMLError."""
    is_kae = is_kae or kae_vf_checker(params["sysfs_root"])
    conn = _libvirt.connect(params["uri"], read_only=check_mode)
    try:
        domain = _libvirt.lookup_domain(conn, params["name"])
        if domain is None:
            if params["skip_missing"]:
                return {"changed": False, "defined": False, "restarted": False, "restart_required": False, "warnings": [],
                        "msg": "%s: not defined on %s; skipped (skip_missing)" % (params["name"], params["uri"])}
            raise GuestConfigError("domain %s is not defined on %s; define it first (this module edits an existing definition)"
                                   % (params["name"], params["uri"]))

        def capabilities():
            return conn.getCapabilities()

        before = inactive_xml(domain)
        root, report = desired_definition(before, params, is_kae, capabilities)
        after = dx.to_string(root)
        before_text = dx.to_string(dx.parse_domain(before))
        changed = not dx.same_xml(before_text, after)
        result = dict(report, changed=changed, defined=True, restarted=False, restart_required=False, warnings=[])
        if changed and not check_mode:
            # Said only when it happens: check mode predictions run on transient guests too.
            if not domain.isPersistent():
                result["warnings"].append("domain %s was transient (for example after a migration without persist_dest); "
                                          "defining it made it persistent on %s" % (params["name"], params["uri"]))
            try:
                domain = conn.defineXML(after)
            except _libvirt.libvirt.libvirtError as exc:
                raise _libvirt.LibvirtFailure("libvirt on %s refused the new definition of %s: %s"
                                              % (params["uri"], params["name"], _libvirt.error_text(exc))) from exc
            defined = inactive_xml(domain)
            result["warnings"].extend(dropped_by_libvirt(defined, params, is_kae, capabilities))
            after = dx.to_string(dx.parse_domain(defined))
        result["xml"] = after
        result["diff"] = {"before": before_text, "after": after}
        running = bool(domain.isActive())
        if changed and running:
            if params["restart"] and not check_mode:
                restart_domain(domain, params["restart_timeout_s"])
                result["restarted"] = True
            else:
                result["restart_required"] = not params["restart"]
                result["restarted"] = params["restart"]
        result["msg"] = summary_message(params["name"], changed, running, result)
        return result
    finally:
        conn.close()


def summary_message(name, changed, running, result):
    if not changed:
        return "%s: definition already as requested" % name
    if result["restarted"]:
        return "%s: definition updated and guest restarted" % name
    if result["restart_required"]:
        return "%s: definition updated; the running guest uses it after its next restart (or set restart=true)" % name
    return "%s: definition updated%s" % (name, "" if running else "; it takes effect when the guest starts")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            uri=dict(type="str", default="qemu:///system"),
            hostdev_xml=dict(type="str"),
            sysfs_root=dict(type="path", default="/sys"),
            trace_profile=dict(type="str", choices=list(TRACE_CHOICES)),
            placement=dict(type="str", default="none", choices=list(dx.PLACEMENTS)),
            numa_node=dict(type="int"),
            remove_foreign_passthrough=dict(type="bool", default=False),
            restart=dict(type="bool", default=False),
            restart_timeout_s=dict(type="int", default=60),
            skip_missing=dict(type="bool", default=False),
        ),
        required_if=[("placement", "numatune", ("numa_node",)), ("placement", "vcpu", ("numa_node",)),
                     ("placement", "cputune", ("numa_node",))],
        supports_check_mode=True,
    )
    if not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib(_libvirt.LIBRARY_NAME), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    if module.params["restart_timeout_s"] < 0:
        module.fail_json(msg="restart_timeout_s must be 0 or more seconds, got %s" % module.params["restart_timeout_s"])
    try:
        result = run(module.params, module.check_mode)
    except (GuestConfigError, dx.DomainXMLError, _libvirt.LibvirtFailure) as exc:
        module.fail_json(msg=str(exc))
    except _libvirt.libvirt.libvirtError as exc:
        module.fail_json(msg="libvirt call failed for domain %s on %s: %s"
                         % (module.params["name"], module.params["uri"], _libvirt.error_text(exc)))
    for warning in result.pop("warnings"):
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
