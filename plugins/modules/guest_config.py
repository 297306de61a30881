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
  - Gives the domain only KAE VFs of this host that no other domain holds (see O(hostdev_xml)); anything else is
    refused by name and nothing is changed. The devices under O(sysfs_root) tell KAE VFs from other PCI devices
    among the domain's hostdevs.
  - Holds the host's lock of the collection while it reads, decides and defines (not in check mode), so that two
    plays on one host cannot interleave a domain's redefinition; waits at most O(timeout_s) for it.
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
  - openeuler.kae._sysfs
  - openeuler.kae._libvirt
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the inactive domain XML before and after.
options:
  domain:
    description: Name of the libvirt domain. It must already be defined on O(uri).
    type: str
    required: true
  hostdev_xml:
    description:
      - XML text of the C(<hostdev mode='subsystem' type='pci'>) elements the domain must hold for its KAE VFs, as
        rendered by the guest role's C(hostdev.xml.j2). Zero elements (an empty string) removes every KAE hostdev.
      - Every address must be a KAE VF (vendor C(0x19e5), ZIP/SEC/HPRE VF device id) under O(sysfs_root) that no
        other libvirt domain of O(uri) holds, running or only defined (the domain itself may hold it already). A root
        port, an absent address, a PF, another device or a VF held elsewhere is refused, naming it; so is a request
        when libvirt cannot list the domains' hostdevs. Nothing is changed then.
      - The attributes and child elements given replace those of a hostdev with the same host address; what libvirt
        adds (the guest-side C(<address>), libvirt's own C(<alias>)) is kept.
      - May end with one C(<qemu:override>) whose C(<qemu:device alias='ua-kae-...'>) entries set C(<qemu:frontend>)
        properties of those hostdevs (the template's upstream variant sets vfio-pci's C(enable-migration)). The
        domain's override entries of C(ua-kae-) aliases become exactly those given (none when there is no
        C(<qemu:override>), for example after switching to openEuler's C(migration='on') variant); entries of
        other aliases are kept.
      - Omit to leave the hostdevs alone.
    type: str
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
    type: float
    default: 60.0
  lab_vfs:
    description:
      - The lab only. The KAE VFs (PCI addresses) the guest holds in the lab, where no VF can be passed through; they
        are written into the domain's C(<metadata>) as C(<kae:vfs xmlns:kae='http://openeuler.org/xmlns/kae/lab-vfs/1.0'>)
        with one C(<kae:vf address='BDF'/>) each, in the definition and (for a running guest, without a restart) in the
        live domain, and M(openeuler.kae.device_info) and M(openeuler.kae.hypervisor_info) count them as held by it.
      - The list replaces what the element names; an empty list removes it. Each address must be a KAE VF of the tree
        under O(sysfs_root) that no other domain holds (as a hostdev or in its C(<kae:vfs>)).
      - Refused unless O(sysfs_root) is a simulated lab tree (it holds the file C(kae-lab-simulated) at its root, which
        the kernel's sysfs never has); on a real host give the VFs with O(hostdev_xml).
      - Omit to leave the element alone.
    type: list
    elements: str
  skip_missing:
    description:
      - When the domain is not defined on O(uri), report RV(defined=false) and change nothing instead of failing
        (for plays that run on every hypervisor of a pair while the guest is defined on one).
    type: bool
    default: false
  timeout_s:
    description:
      - Seconds to wait for the host's lock of the collection (C(/run/lock/openeuler-kae.lock)) while another of its
        state-changing tasks holds it. The task fails, naming the holder and changing nothing, when it is not released
        in time. Not used in check mode.
    type: float
    default: 60.0
seealso:
  - module: openeuler.kae.device_info
  - module: openeuler.kae.hostdev_remap
"""

EXAMPLES = r"""
- name: Give kae-guest one ZIP, SEC and HPRE VF, openEuler trace events, memory on node 0
  openeuler.kae.guest_config:
    domain: kae-guest
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
    domain: kae-guest
    trace_profile: upstream
    restart: true

- name: Render the hostdevs with the guest role's template (the role does this for you)
  openeuler.kae.guest_config:
    domain: kae-guest
    hostdev_xml: "{{ lookup('ansible.builtin.template', 'hostdev.xml.j2', template_vars={'guest_hostdev_vfs': ['0000:31:00.1']}) }}"

- name: Upstream QEMU 8.1 or later, libvirt 10.0 or later - vfio-pci's enable-migration through <qemu:override>
  openeuler.kae.guest_config:
    domain: kae-guest
    hostdev_xml: |
      <hostdev mode='subsystem' type='pci' managed='yes'>
        <driver name='vfio'/>
        <source><address domain='0x0000' bus='0x75' slot='0x00' function='0x1'/></source>
        <alias name='ua-kae-zip-0'/>
      </hostdev>
      <qemu:override xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
        <qemu:device alias='ua-kae-zip-0'>
          <qemu:frontend>
            <qemu:property name='enable-migration' type='bool' value='true'/>
          </qemu:frontend>
        </qemu:device>
      </qemu:override>
    trace_profile: upstream
    timeout_s: 120
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
overrides:
  description: Aliases of the KAE hostdevs whose C(<qemu:override>) entries were added, removed and updated.
  returned: when the domain is defined on O(uri)
  type: dict
  sample: {"added": ["ua-kae-zip-0"], "removed": [], "updated": []}
trace:
  description: C(--trace) patterns added and removed, and the patterns the definition holds afterwards.
  returned: when the domain is defined on O(uri)
  type: dict
  sample: {"added": ["all_vcpus*"], "removed": [], "patterns": ["all_vcpus*"]}
lab_vfs:
  description: VF addresses added to and removed from the domain's C(<metadata><kae:vfs>) (O(lab_vfs)).
  returned: when the domain is defined on O(uri)
  type: dict
  sample: {"added": ["0000:75:00.1"], "removed": []}
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
from ansible.module_utils.common.validation import check_type_int

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx
from ansible_collections.openeuler.kae.plugins.module_utils import _args, _hostlock, _libvirt, _validate
from ansible_collections.openeuler.kae.plugins.module_utils._devices import LAB_MARKER, PCI_DEVICES, domain_holdings, is_lab_tree, read_device
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs, SysfsError
from ansible_collections.openeuler.kae.plugins.module_utils._trace import AUTO_ORDER, PROFILE_BY_NAME, PROFILES

# Every --trace pattern this module owns; others in <qemu:commandline> are left alone.
MANAGED_PATTERNS = tuple(row.trace_pattern for row in PROFILES)
TRACE_CHOICES = tuple(PROFILE_BY_NAME) + ("both", "none")
RESTART_POLL_S = 0.5
# Linux numbers at most 1024 NUMA nodes (NODES_SHIFT 10).
MAX_NUMA_NODE = 1023
# No wait of this module (lock, graceful shutdown) is meant to last longer than a day.
MAX_WAIT_S = 86400
# Where the host lock lives (the unit tests point it at a temporary directory).
LOCK_DIR = _hostlock.DEFAULT_LOCK_DIR

ARGUMENT_SPEC = _args.merge(_args.domain_option(), _args.host_options(), dict(
    hostdev_xml=dict(type="str"),
    trace_profile=dict(type="str", choices=list(TRACE_CHOICES)),
    placement=dict(type="str", default="none", choices=list(dx.PLACEMENTS)),
    numa_node=dict(type="int"),
    remove_foreign_passthrough=dict(type="bool", default=False),
    lab_vfs=dict(type="list", elements="str"),
    restart=dict(type="bool", default=False),
    restart_timeout_s=dict(type="float", default=60.0),
    skip_missing=dict(type="bool", default=False),
    timeout_s=dict(type="float", default=60.0),
))
REQUIRED_IF = [("placement", "numatune", ("numa_node",)), ("placement", "vcpu", ("numa_node",)),
               ("placement", "cputune", ("numa_node",))]


class GuestConfigError(Exception):
    """The request cannot be applied; nothing was changed."""


def check_params(params):
    """InputError naming the first option whose value has the wrong form (before anything is read)."""
    _args.check_shared(params)
    if params["hostdev_xml"] is not None:
        _validate.text(params["hostdev_xml"], "hostdev_xml (the <hostdev> elements hostdev.xml.j2 renders)", allow_empty=True)
    if params["numa_node"] is not None:
        _validate.number(params["numa_node"], "numa_node (a NUMA node of this host, 0-%d)" % MAX_NUMA_NODE,
                         minimum=0, maximum=MAX_NUMA_NODE, integer=True)
    _validate.number(params["restart_timeout_s"], "restart_timeout_s (seconds, 0-%d)" % MAX_WAIT_S, minimum=0,
                     maximum=MAX_WAIT_S)
    _validate.number(params["timeout_s"], "timeout_s (seconds, 0-%d)" % MAX_WAIT_S, minimum=0, maximum=MAX_WAIT_S)
    for bdf in params.get("lab_vfs") or []:
        try:
            dx.parse_bdf(bdf)
        except dx.DomainXMLError as exc:
            raise _validate.InputError("lab_vfs: %s" % exc) from None


def wanted_patterns(profile):
    """--trace patterns for a trace_profile value."""
    if profile == "none":
        return []
    names = AUTO_ORDER if profile == "both" else (profile,)
    return [PROFILE_BY_NAME[name].trace_pattern for name in names]


def wanted_fragment(params):
    """The parsed hostdev_xml (a KaeFragment), or None when the hostdevs are left alone."""
    return dx.parse_hostdev_fragments(params["hostdev_xml"]) if params["hostdev_xml"] is not None else None


def desired_definition(current_xml, params, fragment, is_kae, capabilities):
    """Apply the requested edits to the inactive XML; returns (root, report). Pure apart from CAPABILITIES()."""
    root = dx.parse_domain(current_xml)
    report = {"hostdevs": {"added": [], "removed": [], "updated": []}, "overrides": {"added": [], "removed": [], "updated": []},
              "trace": {"added": [], "removed": []}, "placement": [], "removed_foreign_passthrough": [],
              "lab_vfs": {"added": [], "removed": []}}
    foreign = dx.foreign_passthrough(root, is_kae)
    if foreign and not params["remove_foreign_passthrough"]:
        raise GuestConfigError(
            "domain %s holds passthrough devices that are not KAE VFs: %s. KAE live migration allows no other "
            "passthrough device; remove them or set remove_foreign_passthrough=true"
            % (params["domain"], "; ".join(dx.describe_element(elem) for elem in foreign)))
    dx.remove_elements(root, foreign)
    report["removed_foreign_passthrough"] = [dx.describe_element(elem) for elem in foreign]
    if fragment is not None:
        report["hostdevs"] = dx.set_kae_hostdevs(root, fragment.hostdevs, is_kae)
        report["overrides"] = dx.set_kae_overrides(root, fragment.overrides)
    if params.get("lab_vfs") is not None:
        report["lab_vfs"] = dx.set_lab_vfs(root, params.get("lab_vfs"))
    if params["trace_profile"] is not None:
        report["trace"] = dx.set_trace_args(root, wanted_patterns(params["trace_profile"]), MANAGED_PATTERNS)
    if params["placement"] != "none":
        cpus = dx.node_cpus(capabilities(), params["numa_node"]) if params["placement"] != "numatune" else None
        report["placement"] = dx.set_placement(root, params["placement"], params["numa_node"], cpus)
    report["trace"]["patterns"] = [p for p in dx.trace_patterns(root) if p in MANAGED_PATTERNS]
    return root, report


def dropped_by_libvirt(defined_xml, params, fragment, is_kae, capabilities):
    """Warnings for what libvirt did not keep of the definition just written (a second pass would change it again)."""
    _root, again = desired_definition(defined_xml, params, fragment, is_kae, capabilities)
    warnings = []
    if again["hostdevs"]["updated"] or again["hostdevs"]["added"]:
        warnings.append(
            "libvirt on %s did not keep all attributes of hostdevs %s (upstream libvirt has no migration='on' "
            "attribute and drops it): render the hostdevs without it (guest_hostdev_migration_attr: false)"
            % (params["uri"], ", ".join(again["hostdevs"]["updated"] + again["hostdevs"]["added"])))
    if again["overrides"]["updated"] or again["overrides"]["added"]:
        warnings.append(
            "libvirt on %s did not keep the <qemu:override> entries of %s (only the QEMU driver of libvirt 8.2 or later "
            "keeps them): render the hostdevs without them (guest_hostdev_enable_migration: false)"
            % (params["uri"], ", ".join(again["overrides"]["updated"] + again["overrides"]["added"])))
    if again["trace"]["added"]:
        warnings.append(
            "libvirt on %s did not keep the <qemu:commandline> trace arguments (%s); only the QEMU driver keeps them"
            % (params["uri"], ", ".join(again["trace"]["added"])))
    if again["placement"]:
        warnings.append("libvirt on %s did not keep the placement elements %s" % (params["uri"], ", ".join(again["placement"])))
    return warnings


# ---------------------------------------------------------------- which VFs the domain may be given

def kae_vf_problem(sysfs, bdf):
    """Why host PCI address BDF is not a KAE VF of this host (a sentence), or None when it is one.

    Raises SysfsError when the tree cannot be read: that is never taken for an answer.
    """
    ddir = sysfs.resolve(PCI_DEVICES + "/" + bdf)
    if ddir is None:
        return "does not exist on this host (no %s)" % sysfs.path(PCI_DEVICES + "/" + bdf)
    device = read_device(sysfs, bdf)
    if device is None:
        return "is not a KAE VF (vendor %s, device %s)" % (sysfs.read(ddir + "/vendor"), sysfs.read(ddir + "/device"))
    if device["function"] != "vf":
        return "is a KAE %s PF, not a VF" % device["engine"]
    return None


def kae_vf_checker(sysfs):
    """is_kae(bdf): whether the host's PCI device BDF is a KAE VF, read from the sysfs tree."""
    return lambda bdf: kae_vf_problem(sysfs, bdf) is None


def hostdev_holders(conn, params, lab=False):
    """{bdf: ["DOMAIN (running)", ...]} of the PCI hostdevs every other domain holds, live or in its definition
    (LAB: and the VFs their <metadata><kae:vfs> names).

    Raises GuestConfigError when libvirt cannot tell: an unknown owner is never taken for no owner.
    """
    try:
        holdings = domain_holdings(conn, lab)
    except (_libvirt.libvirt.libvirtError, dx.DomainXMLError) as exc:
        reason = _libvirt.error_text(exc) if isinstance(exc, _libvirt.libvirt.libvirtError) else str(exc)
        raise GuestConfigError(
            "cannot tell whether the VFs asked for domain %s are free: libvirt on %s could not list the domains and their "
            "hostdevs (%s). Nothing was changed; run again when libvirt answers" % (params["domain"], params["uri"], reason)) from exc
    holders = {}
    for bdf, entries in holdings.items():
        others = ["%s (%s)" % (name, how) for name, how in entries if name != params["domain"]]
        if others:
            holders[bdf] = others
    return holders


def check_requested_vfs(bdfs, option, sysfs, conn, params, lab=False):
    """GuestConfigError naming every address BDFS of OPTION that is not a KAE VF of this host free for the domain."""
    if not bdfs:
        return
    problems = ["%s %s" % (bdf, problem) for bdf, problem in ((bdf, kae_vf_problem(sysfs, bdf)) for bdf in bdfs) if problem]
    holders = hostdev_holders(conn, params, lab)
    problems.extend("%s is held by domain %s" % (bdf, ", ".join(holders[bdf])) for bdf in bdfs if bdf in holders)
    if problems:
        raise GuestConfigError(
            "refusing %s for domain %s: %s. Only KAE VFs of this host (read under %s) that no other domain holds "
            "may be given; choose free VFs (openeuler.kae.device_info, the select_vfs filter). Nothing was changed"
            % (option, params["domain"], "; ".join(problems), sysfs.root))


def check_lab_vfs(sysfs, conn, params, lab):
    """GuestConfigError unless lab_vfs is asked on a simulated tree for free KAE VFs of it."""
    if params.get("lab_vfs") is None:
        return
    if not lab:
        raise GuestConfigError(
            "lab_vfs records simulated VF holdings and is for the lab only: the tree at %s is not a simulated one (no %s at "
            "its root). On a real host give the guest its VFs with hostdev_xml. Nothing was changed"
            % (sysfs.root, LAB_MARKER))
    check_requested_vfs([dx.normalise_bdf(bdf) for bdf in params.get("lab_vfs")], "lab_vfs", sysfs, conn, params, lab)


def set_live_lab_vfs(domain, params, check_mode):
    """Make a running domain's live <kae:vfs> name lab_vfs (metadata changes need no restart); whether it changed."""
    if params.get("lab_vfs") is None or not domain.isActive():
        return False
    wanted = sorted(set(dx.normalise_bdf(bdf) for bdf in params.get("lab_vfs")))
    if sorted(dx.lab_vf_bdfs(dx.parse_domain(domain.XMLDesc(0)))) == wanted:
        return False
    if not check_mode:
        domain.setMetadata(_libvirt.libvirt.VIR_DOMAIN_METADATA_ELEMENT, dx.lab_vfs_fragment(wanted) if wanted else None,
                           dx.LAB_VFS_PREFIX, dx.LAB_VFS_NS, _libvirt.libvirt.VIR_DOMAIN_AFFECT_LIVE)
    return True


# ---------------------------------------------------------------- define and restart

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


def skipped_result(params):
    return {"changed": False, "defined": False, "restarted": False, "restart_required": False, "warnings": [],
            "msg": "%s: not defined on %s; skipped (skip_missing)" % (params["domain"], params["uri"])}


def update_definition(conn, params, check_mode, sysfs):
    """Read, decide and (unless CHECK_MODE) define; returns (result, domain or None when not defined)."""
    domain = _libvirt.lookup_domain(conn, params["domain"])
    if domain is None:
        if params["skip_missing"]:
            return skipped_result(params), None
        raise GuestConfigError("domain %s is not defined on %s; define it first (this module edits an existing definition)"
                               % (params["domain"], params["uri"]))
    fragment = wanted_fragment(params)
    lab = is_lab_tree(sysfs)
    if fragment is not None:
        check_requested_vfs([bdf for _element, bdf in fragment.hostdevs], "hostdev_xml", sysfs, conn, params, lab)
    check_lab_vfs(sysfs, conn, params, lab)
    is_kae = kae_vf_checker(sysfs)

    def capabilities():
        return conn.getCapabilities()

    before = inactive_xml(domain)
    root, report = desired_definition(before, params, fragment, is_kae, capabilities)
    after = dx.to_string(root)
    before_text = dx.to_string(dx.parse_domain(before))
    changed = not dx.same_xml(before_text, after)
    # The simulated holdings are metadata: a running guest needs no restart for them (set_live_lab_vfs).
    restart_relevant = changed and not dx.same_xml(dx.without_lab_vfs(before_text), dx.without_lab_vfs(after))
    result = dict(report, changed=changed, defined=True, restarted=False, restart_required=False, warnings=[],
                  restart_relevant=restart_relevant)
    if changed and not check_mode:
        # Said only when it happens: check mode predictions run on transient guests too.
        if not domain.isPersistent():
            result["warnings"].append("domain %s was transient (for example after a migration without persist_dest); "
                                      "defining it made it persistent on %s" % (params["domain"], params["uri"]))
        try:
            domain = conn.defineXML(after)
        except _libvirt.libvirt.libvirtError as exc:
            raise _libvirt.LibvirtFailure("libvirt on %s refused the new definition of %s: %s"
                                          % (params["uri"], params["domain"], _libvirt.error_text(exc))) from exc
        defined = inactive_xml(domain)
        result["warnings"].extend(dropped_by_libvirt(defined, params, fragment, is_kae, capabilities))
        after = dx.to_string(dx.parse_domain(defined))
    result["xml"] = after
    result["diff"] = {"before": before_text, "after": after}
    return result, domain


def settle_running_guest(domain, result, params, check_mode):
    """Restart a running guest whose definition changed (restart=true) or say that it must restart."""
    running = bool(domain.isActive())
    if set_live_lab_vfs(domain, params, check_mode):
        result["changed"] = True
    if result.pop("restart_relevant") and running:
        if params["restart"] and not check_mode:
            restart_domain(domain, params["restart_timeout_s"])
            result["restarted"] = True
        else:
            result["restart_required"] = not params["restart"]
            result["restarted"] = params["restart"]
    result["msg"] = summary_message(params["domain"], result["changed"], running, result)


def run(params, check_mode):
    """Do the work; returns the module result. Raises GuestConfigError, LibvirtFailure, DomainXMLError, LockTimeout, SysfsError.

    The host lock spans reading the definition, deciding and defining, so that two plays cannot interleave a
    domain's redefinition; check mode writes nothing and takes no lock.
    """
    sysfs = Sysfs(params["sysfs_root"])
    conn = _libvirt.connect(params["uri"], read_only=check_mode)
    try:
        if check_mode:
            result, domain = update_definition(conn, params, check_mode, sysfs)
        else:
            with _hostlock.host_lock("guest_config of domain %s" % params["domain"], params["timeout_s"], lock_dir=LOCK_DIR):
                result, domain = update_definition(conn, params, check_mode, sysfs)
        if domain is not None:
            settle_running_guest(domain, result, params, check_mode)
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


def build_module():
    """The AnsibleModule; an infinite number given to an int option fails it with a sentence, not a traceback."""
    try:
        return AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    except OverflowError:
        # ansible-core's int conversion raises OverflowError for infinity instead of failing the module.
        int_options = [key for key, spec in ARGUMENT_SPEC.items() if spec.get("type") == "int"]
        raw_spec = dict((key, dict(spec, type="raw") if key in int_options else spec) for key, spec in ARGUMENT_SPEC.items())
        module = AnsibleModule(argument_spec=raw_spec, supports_check_mode=True)
        bad = [key for key in int_options if _overflows(module.params[key])]
        module.fail_json(msg="%s must be a whole number, got %s; nothing was changed"
                         % (" and ".join(bad), ", ".join(repr(module.params[key]) for key in bad)))
        raise  # fail_json exits; this satisfies readers and linters


def _overflows(value):
    try:
        check_type_int(value)
    except OverflowError:
        return True
    except (TypeError, ValueError):
        return False
    return False


def main():
    module = build_module()
    if not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib(_libvirt.LIBRARY_NAME), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    params = module.params
    try:
        check_params(params)
        result = run(params, module.check_mode)
    except (_validate.InputError, GuestConfigError, dx.DomainXMLError, _libvirt.LibvirtFailure, _hostlock.LockTimeout) as exc:
        module.fail_json(msg=str(exc))
    except SysfsError as exc:
        module.fail_json(msg="cannot read the host's PCI devices under %s to check the domain's VFs: %s; nothing was changed"
                         % (params["sysfs_root"], exc))
    except OSError as exc:
        module.fail_json(msg="guest_config of domain %s: cannot use %s: %s; nothing was changed"
                         % (params["domain"], exc.filename or "a file", exc.strerror or exc))
    except _libvirt.libvirt.libvirtError as exc:
        module.fail_json(msg="libvirt call failed for domain %s on %s: %s"
                         % (params["domain"], params["uri"], _libvirt.error_text(exc)))
    for warning in result.pop("warnings"):
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
