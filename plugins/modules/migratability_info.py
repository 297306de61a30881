#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: migratability_info
short_description: Ask a running guest's QEMU whether it can migrate, and prove that its trace events reach its log
version_added: 0.1.0
author: openEuler KAE collection contributors (@openeuler)
description:
  - Runs on the hypervisor where the guest runs and answers, without changing anything, whether a live migration of
    the guest can succeed and be measured. RV(go) is true only when every check in O(checks) passed; otherwise
    RV(problems) says why, one sentence per problem naming the guest and the host. The module fails only when it
    cannot look at the guest at all (bad options, libvirt missing or unreachable).
  - V(qemu) asks QEMU itself, through libvirt's QEMU monitor passthrough (C(virDomainQemuMonitorCommand), which
    needs O(uri) opened read-write), with
    C(query-migrate). Its C(blocked-reasons) (QEMU 6.0 and later) are every migration blocker QEMU holds, devices
    marked unmigratable included; they are returned, and refused, in QEMU's own words. libvirt 9.0 has no other API
    for them (it asks the same question itself only once a migration starts, and then refuses with
    C(cannot migrate domain) and the same reasons). A QEMU older than 6.0 cannot be asked and is refused.
    A migration already in progress is refused too.
  - V(trace) checks that at least one trace event of O(profile) from the guest's current QEMU process is in the
    guest's log. The current process's part of the log starts at the line libvirt writes each time it starts a
    QEMU for the domain (C(starting up libvirt version ...)); an incoming migration starts a process too, so after a
    migration the part starts with the incoming process. The log is read backwards from its end, then through
    virtlogd's rotated backups (C(LOG.0), C(LOG.1), ...), at most O(max_bytes) in all, so the cost does not depend
    on the log's size.
  - When no such event is there, QEMU is asked for the state of each of the profile's events
    (C(trace-event-get-state)) and the refusal names the likely cause, from the running domain's and its
    definition's C(--trace) arguments and QEMU's answer; a guest started before the trace arguments were added
    (restart it), patterns that match no event of this QEMU, or a QEMU whose trace backend is not C(log).
    If QEMU has an event of the profile enabled and another event of the same process reached the log, the trace
    counts as proven (the profile's events may fire only during a migration).
extends_documentation_fragment:
  - openeuler.kae.attributes
  - openeuler.kae.attributes.INFO_MODULE
  - openeuler.kae._libvirt
options:
  domain:
    description: Name of the libvirt domain (the guest).
    type: str
    required: true
  checks:
    description:
      - The checks to run; V(qemu) is QEMU's own verdict, V(trace) the arrival of trace events.
    type: list
    elements: str
    choices: [qemu, trace]
    default: [qemu, trace]
  profile:
    description:
      - Trace profile whose events must reach the log (see P(openeuler.kae.migration_downtime#filter));
        V(auto) accepts the events of V(openeuler) and V(upstream).
    type: str
    default: auto
    choices: [auto, openeuler, upstream, downtime_checkpoint]
  log_path:
    description:
      - The guest's QEMU log on this host. Defaults to C(/var/log/libvirt/qemu/DOMAIN.log).
    type: path
  max_bytes:
    description:
      - Most bytes to read backwards from the end of the log and its rotated backups before giving up.
    type: int
    default: 16777216
  timeout_s:
    description:
      - How long to wait for a trace event to reach the log when the running QEMU has trace arguments for the
        profile but no event is there yet (a guest that has just started). V(0) reads once.
    type: float
    default: 5
attributes:
  platform:
    platforms: posix
    description: Runs on the hypervisor host where the guest runs (its log is read locally).
    support: full
notes:
  - The monitor passthrough makes libvirt mark the domain tainted with C(custom-monitor) (libvirt writes
    C(Domain id=N is tainted) with that word into the domain's log). The module sends only the read-only commands
    C(query-migrate) and C(trace-event-get-state); the mark stays until the QEMU process ends.
  - Only the V(trace) check reads the log; only the V(qemu) check and a missing trace event use the monitor.
  - libvirt refuses some migrations on its own grounds before asking QEMU (snapshots, an active block job, a
    C(<shmem>) that is not the master, C(invtsc) without a TSC frequency, ...); those are not QEMU's verdict and
    are not checked here.
seealso:
  - module: openeuler.kae.live_migration
  - module: openeuler.kae.qemu_trace_events
  - name: query-migrate (QEMU QMP reference)
    description: The command whose blocked-reasons are QEMU's verdict.
    link: https://www.qemu.org/docs/master/interop/qemu-qmp-ref.html
  - name: virDomainQemuMonitorCommand (libvirt API)
    description: libvirt's monitor passthrough, which taints the domain.
    link: https://libvirt.org/html/libvirt-libvirt-qemu.html#virDomainQemuMonitorCommand
"""

EXAMPLES = r"""
- name: Ask QEMU whether kae-guest can migrate, and whether its trace events reach its log
  openeuler.kae.migratability_info:
    domain: kae-guest
  register: migratable

- name: Refuse with every reason at once
  ansible.builtin.assert:
    that: migratable.go
    fail_msg: "{{ migratable.problems | join('; ') }}"

- name: Only the trace arrival, right after the guest was restarted with its trace arguments
  openeuler.kae.migratability_info:
    domain: kae-guest
    checks: [trace]
    profile: upstream
    timeout_s: 10
"""

RETURN = r"""
go:
  description: True when every check in O(checks) passed.
  returned: always
  type: bool
  sample: false
problems:
  description: One sentence per failed check, naming the guest and the host; empty when RV(go) is true.
  returned: always
  type: list
  elements: str
  sample:
    - >-
      QEMU refuses to migrate kae-blocked on kae-lab-a: Migration is disabled when using feature 'peer mode' in
      device 'ivshmem'
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "kae-guest on kae-lab-a can migrate: QEMU reports no blocker; trace event vm_state_notify at 1796224884.449519"
host:
  description: Host name of the hypervisor, as its libvirt reports it.
  returned: always
  type: str
  sample: kae-lab-a
active:
  description: Whether the domain runs on this host; the checks run only when it does.
  returned: always
  type: bool
  sample: true
qemu:
  description: QEMU's verdict.
  returned: when O(checks) has V(qemu) and the domain runs here
  type: dict
  contains:
    version:
      description: QEMU version as libvirt reports it.
      type: str
      sample: 7.2.22
    blocked_reasons:
      description: QEMU's reasons, verbatim, why the guest cannot migrate; empty when nothing blocks.
      type: list
      elements: str
      sample: ["Migration is disabled when using feature 'peer mode' in device 'ivshmem'"]
    status:
      description: C(query-migrate)'s migration status (null before the first migration of this QEMU process).
      type: str
      sample: completed
trace:
  description: Trace arrival.
  returned: when O(checks) has V(trace) and the domain runs here
  type: dict
  contains:
    profile:
      description: O(profile).
      type: str
      sample: auto
    events:
      description: The event names looked for.
      type: list
      elements: str
      sample: [all_vcpus_paused, all_vcpus_prepared, vm_state_notify]
    event:
      description: The latest event of RV(trace.events) from the current QEMU process (C(ts), C(tid), C(name), C(args)); null when none.
      type: dict
      sample: {"ts": 1796224884.449519, "tid": 76, "name": "vm_state_notify", "args": "running 1 reason 9 (running)"}
    process_started:
      description: Time of libvirt's start line of the current QEMU process; null when the scan stopped before it.
      type: str
      sample: "2026-12-02 15:21:23.316+0000"
    patterns:
      description: C(--trace) values of the running domain.
      type: list
      elements: str
      sample: ["all_vcpus*", "vm_state_notify"]
    defined_patterns:
      description: C(--trace) values of the domain's persistent definition (the running ones for a transient domain).
      type: list
      elements: str
      sample: ["all_vcpus*", "vm_state_notify"]
    states:
      description: QEMU's state of each event (enabled, disabled, unavailable, unknown); empty when an event was found.
      type: dict
      sample: {}
    bytes_read:
      description: Bytes read backwards from the end of the log (and its backups).
      type: int
      sample: 2140
    log_path:
      description: The log read.
      type: str
      sample: /var/log/libvirt/qemu/kae-guest.log
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.openeuler.kae.plugins.module_utils import _args
from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx
from ansible_collections.openeuler.kae.plugins.module_utils import _libvirt
from ansible_collections.openeuler.kae.plugins.module_utils import _preflight
from ansible_collections.openeuler.kae.plugins.module_utils import _validate
from ansible_collections.openeuler.kae.plugins.module_utils._logread import domain_log_path
from ansible_collections.openeuler.kae.plugins.module_utils._migration import version_text
from ansible_collections.openeuler.kae.plugins.module_utils._trace import PROFILE_CHOICES, profile_event_names

CHECKS = ("qemu", "trace")
POLL_INTERVAL_S = 0.5
# One hour of waiting is already far beyond a QEMU start; 1 TiB is far beyond any log.
MAX_TIMEOUT_S = 3600
MAX_LOG_BYTES = 1 << 40


def argument_spec():
    return _args.merge(_args.domain_option(), _args.libvirt_option(), _args.log_path_option(), dict(
        checks=dict(type="list", elements="str", choices=list(CHECKS), default=list(CHECKS)),
        profile=dict(type="str", default="auto", choices=list(PROFILE_CHOICES)),
        max_bytes=dict(type="int", default=16 * 1024 * 1024),
        timeout_s=dict(type="float", default=5.0),
    ))


def validate(params):
    """Check the options before anything is opened; raises _validate.InputError."""
    _args.check_shared(params)
    if "://" not in params["uri"]:
        raise _validate.InputError("uri must be a libvirt URI such as qemu:///system, got %r" % params["uri"])
    if not params["checks"]:
        raise _validate.InputError("checks must name at least one of %s" % ", ".join(CHECKS))
    _validate.positive(params["max_bytes"], "max_bytes", maximum=MAX_LOG_BYTES, integer=True)
    _validate.number(params["timeout_s"], "timeout_s", minimum=0, maximum=MAX_TIMEOUT_S)


def ask(dom, host, command, arguments=None):
    """(return, error) of one QMP command sent to DOMAIN's QEMU."""
    text = _libvirt.qemu_monitor_command(dom, _preflight.qmp_command(command, arguments), host)
    return _preflight.qmp_reply(text, command)


def check_qemu(dom, host, domain, qemu_version):
    """({version, blocked_reasons, status}, problems): QEMU's own verdict."""
    answer, error = ask(dom, host, "query-migrate")
    if error is not None:
        raise _preflight.PreflightError("QEMU answered query-migrate with an error: %s" % error)
    reasons = _preflight.blocked_reasons(answer, qemu_version)
    problems = [_preflight.qemu_refusal(domain, host, reasons)] if reasons else []
    running = _preflight.migration_in_progress(answer)
    if running:
        problems.append("a migration of %s is already in progress on %s (QEMU's migration status: %s); wait for it to end "
                        "or abort it first" % (domain, host, running))
    return {"version": version_text(qemu_version), "blocked_reasons": reasons, "status": answer.get("status")}, problems


def domain_trace_values(dom, flags):
    return dx.trace_patterns(dx.parse_domain(dom.XMLDesc(flags)))


def scan_log(params, path, names, live):
    """The log scan, repeated until O(timeout_s) while the running QEMU has trace arguments and nothing arrived yet."""
    deadline = time.monotonic() + params["timeout_s"]
    while True:
        scan = _preflight.scan_current_process(path, names, params["max_bytes"])
        waiting_helps = scan["event"] is None and scan["complete"] and not scan["ended"] and _preflight.matching(live, names)
        if not waiting_helps or time.monotonic() >= deadline:
            return scan
        time.sleep(POLL_INTERVAL_S)


def check_trace(params, dom, host):
    """(trace section, problems): an event of the profile from the current QEMU process is in the log."""
    domain = params["domain"]
    names = profile_event_names(params["profile"])
    path = params["log_path"] or domain_log_path(domain)
    live = domain_trace_values(dom, 0)
    defined = domain_trace_values(dom, _libvirt.libvirt.VIR_DOMAIN_XML_INACTIVE)
    scan = scan_log(params, path, names, _preflight.trace_patterns(live))
    states = {}
    if scan["event"] is None:
        states = dict((name, _preflight.event_state(*ask(dom, host, "trace-event-get-state", {"name": name}))) for name in names)
    cause = _preflight.trace_cause(scan, names, live, defined, states, path, params["max_bytes"])
    section = {"profile": params["profile"], "events": names, "event": scan["event"], "process_started": scan["started"],
               "patterns": live, "defined_patterns": defined, "states": states, "bytes_read": scan["bytes_read"], "log_path": path}
    return section, ([_preflight.trace_refusal(domain, host, names, scan, cause)] if cause else [])


def summary(domain, host, result):
    if result["problems"]:
        return "%s on %s cannot migrate: %s" % (domain, host, "; ".join(result["problems"]))
    said = []
    if "qemu" in result:
        said.append("QEMU reports no blocker")
    if "trace" in result:
        event = result["trace"]["event"]
        said.append("trace event %s at %s" % (event["name"], event["ts"]) if event
                    else "trace events enabled in QEMU and the log receives its trace lines")
    return "%s on %s can migrate: %s" % (domain, host, "; ".join(said))


def run_checks(params, conn, host):
    """The module's result for an open connection."""
    domain = params["domain"]
    result = {"changed": False, "host": host, "active": False, "problems": []}
    dom = _libvirt.lookup_domain(conn, domain)
    if dom is None or not dom.isActive():
        result["problems"].append("%s is not running on %s (%s): QEMU can only be asked where the guest runs"
                                  % (domain, host, "not defined" if dom is None else "defined, not running"))
    else:
        result["active"] = True
        for check in CHECKS:
            if check in params["checks"]:
                run_one(check, params, conn, dom, host, result)
    result["go"] = not result["problems"]
    result["msg"] = summary(domain, host, result)
    return result


def run_one(check, params, conn, dom, host, result):
    """Run one check into RESULT; a check that cannot read what it needs is a problem, never a pass."""
    domain = params["domain"]
    try:
        if check == "qemu":
            section, problems = check_qemu(dom, host, domain, conn.getVersion())
        else:
            section, problems = check_trace(params, dom, host)
    except (_preflight.PreflightError, _libvirt.LibvirtFailure, dx.DomainXMLError) as exc:
        result["problems"].append("cannot run the %s check of %s on %s: %s" % (check, domain, host, exc))
        return
    except _libvirt.libvirt.libvirtError as exc:
        result["problems"].append("cannot run the %s check of %s on %s: %s" % (check, domain, host, _libvirt.error_text(exc)))
        return
    result[check] = section
    result["problems"].extend(problems)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        validate(module.params)
    except _validate.InputError as exc:
        module.fail_json(msg=str(exc))
    if not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib(_libvirt.LIBRARY_NAME), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    params = module.params
    _libvirt.exit_with_read(module, params["uri"], lambda conn: run_checks(params, conn, _libvirt.host_name(conn, params["uri"])))


if __name__ == "__main__":
    main()
