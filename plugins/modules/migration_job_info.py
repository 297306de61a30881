#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_job_info
short_description: Read how far a running live migration of a domain is, as one progress sample and one line
version_added: 0.1.0
author: openEuler KAE collection contributors (@openeuler)
description:
  - Asks libvirt, without changing anything, for the domain's current job (C(virDomainGetJobStats)) and returns it as
    the same progress sample M(openeuler.kae.live_migration) records (RV(openeuler.kae.live_migration#module:progress)),
    with a one-line summary for the operator (data left, transfer rate, dirty rate, pass, the downtime QEMU expects
    and the maximum downtime in force).
  - Meant to be polled on the source host while M(openeuler.kae.live_migration) runs as an async task, so that each
    poll prints one line and the task ends when the job is gone (see the examples).
  - With O(wait_s), one call also waits for the job to end, reading it every 0.2 s, and answers as soon as it has
    (RV(ended)), so a poll loop learns the end of a short migration at once instead of after its next pause.
  - Fails, naming the URI and the domain, when libvirt cannot be reached or the domain is not defined.
extends_documentation_fragment:
  - openeuler.kae.attributes
  - openeuler.kae.attributes.INFO_MODULE
  - openeuler.kae._libvirt
options:
  domain:
    description: Name of the libvirt domain whose job is read.
    type: str
    required: true
  wait_s:
    description:
      - How long to wait, in seconds from V(0) to V(60), for the job to end before answering. A job that runs is
        waited for; when none runs yet, one that starts within the wait is waited for too. V(0) reads once.
      - The answer is the last read, with RV(active) false and RV(ended) true when a job ran during the wait and has
        ended, or the domain has stopped running here (a migrated guest leaves its source).
    type: float
    default: 0
attributes:
  platform:
    platforms: posix
    description: Runs on the source hypervisor of the migration (or anywhere O(uri) reaches it).
    support: full
seealso:
  - module: openeuler.kae.live_migration
"""

EXAMPLES = r"""
- name: Start the migration in the background
  openeuler.kae.live_migration:
    domain: kae-guest
    destination_uri: qemu+ssh://kae-lab-b/system
    timeout_s: 600
  async: 660
  poll: 0
  register: started

- name: One line every 2 s while the job runs
  openeuler.kae.migration_job_info:
    domain: kae-guest
  register: job
  until: not job.active
  retries: 330
  delay: 2

- name: Wait up to 2 s for the job to end, then say how far it is (one call a poll, no pause between)
  openeuler.kae.migration_job_info:
    domain: kae-guest
    wait_s: 2
  register: job
  until: job.ended or not job.active
  retries: 330
  delay: 0
"""

RETURN = r"""
active:
  description: Whether the domain has a job running (a migration in progress).
  returned: always
  type: bool
  sample: true
job_type:
  description: libvirt's job type (C(virDomainJobType)) as a number; 0 when no job runs.
  returned: always
  type: int
  sample: 2
sample:
  description:
    - The progress sample, in the shape of RV(openeuler.kae.live_migration#module:progress) entries; C(t_s) is
      libvirt's elapsed time of the job in seconds. Null when no job runs or QEMU has no figures yet.
  returned: always
  type: dict
  sample: {"t_s": 4.1, "elapsed_ms": 4100, "total_mib": 192.6, "processed_mib": 150.2, "remaining_mib": 40.1,
           "rate_mib_s": 75.3, "dirty_rate_mib_s": 12.0, "iteration": 2, "expected_downtime_ms": 310,
           "auto_converge_throttle": null, "max_downtime_ms": 100}
line:
  description: One line for the operator; says that no job runs when none does.
  returned: always
  type: str
  sample: "kae-guest 4.1 s: 40.1 MiB of 192.6 MiB left, 75.3 MiB/s sent, dirty 12.0 MiB/s, iteration 2, expected downtime 310 ms (limit 100 ms)"
ended:
  description:
    - Whether a job ran during the call and is over now, or the domain stopped running here while the call waited.
      Always false with O(wait_s=0).
  returned: always
  type: bool
  sample: false
max_downtime_ms:
  description: The domain's maximum downtime now (C(virDomainMigrateGetMaxDowntime)); null when libvirt does not say.
  returned: always
  type: int
  sample: 100
"""

import time

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.openeuler.kae.plugins.module_utils import _args
from ansible_collections.openeuler.kae.plugins.module_utils import _convergence
from ansible_collections.openeuler.kae.plugins.module_utils import _libvirt
from ansible_collections.openeuler.kae.plugins.module_utils import _migration
from ansible_collections.openeuler.kae.plugins.module_utils import _validate


# How often a waiting call reads the job, and the longest wait one call may take.
WAIT_READ_INTERVAL_S = 0.2
MAX_WAIT_S = 60


def argument_spec():
    return _args.merge(_args.libvirt_option(), _args.domain_option(), {"wait_s": {"type": "float", "default": 0}})


def max_downtime(dom):
    """The maximum downtime in force, or None when this libvirt (or a read-only connection) cannot say."""
    try:
        return dom.migrateGetMaxDowntime(0)
    except (_libvirt.libvirt.libvirtError, AttributeError):
        return None


def running_domain(conn, name):
    """NAME's domain while it is defined and running on CONN, else None (a migrated guest leaves its source: undefined
    or shut off)."""
    dom = _libvirt.lookup_domain(conn, name)
    try:
        return dom if dom is not None and dom.isActive() == 1 else None
    except _libvirt.libvirt.libvirtError as exc:
        if exc.get_error_code() == _libvirt.libvirt.VIR_ERR_NO_DOMAIN:
            return False
        # Could not read is not "gone": the caller fails rather than report the job as ended.
        raise _libvirt.LibvirtFailure("cannot tell whether %s runs on %s: %s" % (name, conn.getURI(), _libvirt.error_text(exc))) from exc


def wait_for_end(conn, uri, name, wait_s, clock=time.monotonic, sleep=time.sleep):
    """The module's result after waiting up to WAIT_S for the job of NAME to end (one read when WAIT_S is 0)."""
    deadline = clock() + wait_s
    waiting = wait_s > 0 and running_domain(conn, name) is not None
    result = read_job(conn, uri, name)
    seen = result["active"]
    while waiting and clock() < deadline:
        sleep(WAIT_READ_INTERVAL_S)
        result = read_while_running(conn, uri, name)
        if result is None or (seen and not result["active"]):
            return dict(result or read_idle(name), ended=True)
        seen = seen or result["active"]
    return dict(result, ended=False)


def read_while_running(conn, uri, name):
    """The job of NAME, or None once NAME no longer runs here (a migrated guest leaves its source)."""
    try:
        dom = running_domain(conn, name)
        return None if dom is None else job_result(dom, uri, name)
    except _libvirt.LibvirtFailure:
        # Gone between the two reads, or a real failure: only the second is raised.
        if running_domain(conn, name) is not None:
            raise
        return None


def read_idle(name):
    """The result for a domain that no longer runs here: no job, nothing to sample."""
    return {"active": False, "job_type": _migration.JOB_NONE, "sample": None, "line": "%s: no job is running" % name,
            "max_downtime_ms": None}


def read_job(conn, uri, name):
    """The module's result for the job of NAME on CONN."""
    dom = _libvirt.lookup_domain(conn, name)
    if dom is None:
        raise _libvirt.LibvirtFailure("domain %s is not defined on %s" % (name, uri))
    return job_result(dom, uri, name)


def job_result(dom, uri, name):
    """The module's result for the job of DOM (NAME on URI)."""
    try:
        stats = dom.jobStats()
    except _libvirt.libvirt.libvirtError as exc:
        raise _libvirt.LibvirtFailure("reading the job of %s on %s failed: %s" % (name, uri, _libvirt.error_text(exc))) from exc
    job_type = stats.get("type", _migration.JOB_NONE)
    limit_ms = max_downtime(dom)
    sample = None
    if job_type != _migration.JOB_NONE:
        sample = _convergence.progress_sample(stats, (stats.get("time_elapsed") or 0) / 1000.0)
    if sample is None:
        line = "%s: %s" % (name, "no job is running" if job_type == _migration.JOB_NONE else "job started, no figures yet")
    else:
        sample["max_downtime_ms"] = limit_ms
        line = _convergence.progress_line(name, sample, limit_ms)
    return {"active": job_type != _migration.JOB_NONE, "job_type": job_type, "sample": sample, "line": line,
            "max_downtime_ms": limit_ms}


def main():
    spec, problem = _validate.screen_number_options(basic._load_params(), argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    try:
        if problem:
            raise _validate.InputError(problem)
        _validate.domain_name(params["domain"])
        _validate.number(params["wait_s"], "wait_s", minimum=0, maximum=MAX_WAIT_S)
    except _validate.InputError as exc:
        module.fail_json(msg=str(exc))
    if not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib(_libvirt.LIBRARY_NAME), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    _libvirt.exit_with_read(module, params["uri"], lambda conn: wait_for_end(conn, params["uri"], params["domain"], params["wait_s"]),
                            read_only=True)


if __name__ == "__main__":
    main()
