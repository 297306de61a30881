#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dirty_rate_info
short_description: Measure how fast a running guest dirties memory and estimate whether its live migration converges
version_added: 0.1.0
author: openEuler KAE collection contributors (@openeuler)
description:
  - Asks QEMU, through libvirt (C(virDomainStartDirtyRateCalc), the call behind C(virsh domdirtyrate-calc)), to
    measure the guest's dirty rate over O(calc_s) seconds, waits for the result in the domain's C(dirtyrate.*)
    statistics, and estimates from it whether a pre-copy migration converges at O(max_downtime_ms) with the
    bandwidth O(bandwidth_mib_s) (by default the domain's migration speed limit, C(virDomainMigrateGetMaxSpeed)).
  - "The estimate follows the passes of a pre-copy migration: a pass sends what remained, the guest dirties memory at
    the measured rate while it does, and QEMU stops the guest once what remains can be sent within the maximum
    downtime. RV(estimate.converges) is V(null) when the bandwidth is unknown (no limit set and none given)."
  - The measurement changes nothing in the guest or its definition (QEMU counts or samples pages), so the module reports
    C(changed=false) and measures in check mode too. It needs a read-write libvirt connection, as the measurement
    is started by a command.
  - Fails, naming the URI and the domain, when libvirt cannot be reached, the domain does not run, this libvirt or
    QEMU cannot measure the dirty rate, or the result does not come within O(calc_s) + 10 s.
extends_documentation_fragment:
  - openeuler.kae.attributes
  - openeuler.kae._libvirt
options:
  domain:
    description: Name of the running libvirt domain to measure.
    type: str
    required: true
  calc_s:
    description: How long QEMU measures, in whole seconds from V(1) to V(60).
    type: int
    default: 1
  max_downtime_ms:
    description: The maximum downtime the estimate is made for, in milliseconds.
    type: int
    default: 100
  bandwidth_mib_s:
    description:
      - The migration bandwidth the estimate assumes, in MiB/s. Without it the domain's migration speed limit is
        used; when none is set, the estimate says the bandwidth is unknown.
    type: int
  mode:
    description:
      - How QEMU measures (C(virsh domdirtyrate-calc --mode)).
      - V(page_sampling) hashes a sample of pages and counts those whose content changed. It costs the guest nothing,
        but misses pages rewritten with the same content (which a migration still sends) and a working set smaller
        than its sample spacing, so it can read low.
      - V(dirty_bitmap) counts every page written, as a migration's dirty bitmap does, so it measures what a pass has
        to send again; QEMU logs dirty pages while it measures. QEMU 7.2 running a guest under TCG (no KVM) was seen to
        crash on it.
      - V(dirty_ring) needs KVM's dirty ring enabled for the guest.
    type: str
    choices: [page_sampling, dirty_bitmap, dirty_ring]
    default: page_sampling
attributes:
  check_mode:
    support: full
    details:
      - Measures as in a normal run; nothing is changed either way.
  diff_mode:
    support: none
  platform:
    platforms: posix
    description: Runs on the hypervisor the guest runs on (or anywhere O(uri) reaches it).
    support: full
seealso:
  - module: openeuler.kae.live_migration
  - module: openeuler.kae.migration_job_info
  - name: virDomainStartDirtyRateCalc (libvirt API)
    description: The call that starts the measurement, and the C(dirtyrate.*) statistics it fills.
    link: https://libvirt.org/html/libvirt-libvirt-domain.html#virDomainStartDirtyRateCalc
"""

EXAMPLES = r"""
- name: Estimate the migration of kae-guest at 100 ms over a 1024 MiB/s link
  openeuler.kae.dirty_rate_info:
    domain: kae-guest
    calc_s: 2
    max_downtime_ms: 100
    bandwidth_mib_s: 1024
  register: dirty

- name: Refuse to start a migration that is not expected to converge
  ansible.builtin.assert:
    that: dirty.estimate.converges is not false
    fail_msg: "{{ dirty.estimate.text }}"
"""

RETURN = r"""
dirty_rate_mib_s:
  description: The dirty rate QEMU measured, in MiB/s.
  returned: always
  type: float
  sample: 35.0
mode:
  description: How QEMU measured (O(mode)).
  returned: always
  type: str
  sample: page_sampling
calc_s:
  description: How long QEMU measured, in seconds.
  returned: always
  type: int
  sample: 1
memory_mib:
  description: The guest's memory in MiB (its current allocation, what a migration sends).
  returned: always
  type: int
  sample: 192
bandwidth_mib_s:
  description: The bandwidth the estimate assumed, in MiB/s; null when unknown.
  returned: always
  type: int
  sample: 1024
estimate:
  description: Whether the migration is expected to converge, with the figures.
  returned: always
  type: dict
  contains:
    converges:
      description: True or false; null when the bandwidth is unknown.
      type: bool
      sample: true
    final_transfer_mib:
      description: What is expected to remain when QEMU stops the guest; null unless it converges.
      type: float
      sample: 6.6
    expected_downtime_ms:
      description: The time to send that remainder at the bandwidth; null unless it converges.
      type: float
      sample: 6.4
    iterations:
      description: Pre-copy passes expected, the last one included; null unless it converges.
      type: int
      sample: 2
    text:
      description: The estimate in one sentence.
      type: str
      sample: "dirty rate 35.0 MiB/s, bandwidth 1024.0 MiB/s: converges; expected final transfer ~6.6 MiB, ~6 ms, within 100 ms"
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.openeuler.kae.plugins.module_utils import _args
from ansible_collections.openeuler.kae.plugins.module_utils import _convergence
from ansible_collections.openeuler.kae.plugins.module_utils import _libvirt
from ansible_collections.openeuler.kae.plugins.module_utils import _validate

# How often the statistics are read while QEMU measures, and how long past calc_s the result may take.
POLL_S = 0.2
GRACE_S = 10.0
MAX_CALC_S = 60
# virDomainDirtyRateCalcFlags by the module's mode names.
MODES = {"page_sampling": 0, "dirty_bitmap": 1, "dirty_ring": 2}


def argument_spec():
    return _args.merge(_args.libvirt_option(), _args.domain_option(), dict(
        calc_s=dict(type="int", default=1),
        max_downtime_ms=dict(type="int", default=100),
        bandwidth_mib_s=dict(type="int"),
        mode=dict(type="str", default="page_sampling", choices=list(MODES)),
    ))


def validate(params):
    _validate.domain_name(params["domain"])
    _validate.positive(params["calc_s"], "calc_s", maximum=MAX_CALC_S, integer=True)
    _validate.positive(params["max_downtime_ms"], "max_downtime_ms", maximum=_convergence.QEMU_MAX_DOWNTIME_MS, integer=True)
    if params["bandwidth_mib_s"] is not None:
        _validate.positive(params["bandwidth_mib_s"], "bandwidth_mib_s", maximum=_convergence.UNLIMITED_BANDWIDTH_MIB_S, integer=True)


def call(what, uri, func, *args):
    try:
        return func(*args)
    except _libvirt.libvirt.libvirtError as exc:
        raise _libvirt.LibvirtFailure("%s on %s failed: %s" % (what, uri, _libvirt.error_text(exc))) from exc


def dirty_rate_stats(conn, dom, uri, name):
    records = call("reading the dirty rate of %s" % name, uri, conn.domainListGetStats, [dom], _libvirt.libvirt.VIR_DOMAIN_STATS_DIRTYRATE)
    return records[0][1] if records else None


def measure(conn, dom, uri, name, calc_s, mode="page_sampling"):
    """Start QEMU's measurement in MODE and wait for its result; the dirty rate in MiB/s."""
    previous = _convergence.dirty_rate_start(dirty_rate_stats(conn, dom, uri, name))
    call("starting the dirty-rate measurement (%s) of %s" % (mode, name), uri, dom.startDirtyRateCalc, calc_s, MODES[mode])
    deadline = time.monotonic() + calc_s + GRACE_S
    while time.monotonic() < deadline:
        time.sleep(POLL_S)
        rate = _convergence.measured_dirty_rate(dirty_rate_stats(conn, dom, uri, name), previous)
        if rate is not None:
            return rate
    raise _libvirt.LibvirtFailure("QEMU did not report the dirty rate of %s on %s within %s s" % (name, uri, calc_s + GRACE_S))


def bandwidth(dom, uri, name, given):
    """The bandwidth to assume: GIVEN, else the domain's migration speed limit (None when unlimited)."""
    if given is not None:
        return given
    limit = call("reading the migration speed limit of %s" % name, uri, dom.migrateGetMaxSpeed, 0)
    return None if limit >= _convergence.UNLIMITED_BANDWIDTH_MIB_S else limit


def read(conn, params):
    uri, name = params["uri"], params["domain"]
    dom = _libvirt.lookup_domain(conn, name)
    if dom is None:
        raise _libvirt.LibvirtFailure("domain %s is not defined on %s" % (name, uri))
    if not call("reading the state of %s" % name, uri, dom.isActive):
        raise _libvirt.LibvirtFailure("domain %s does not run on %s: only a running guest dirties memory" % (name, uri))
    memory_mib = call("reading the size of %s" % name, uri, dom.info)[2] // 1024
    rate = measure(conn, dom, uri, name, params["calc_s"], params["mode"])
    link = bandwidth(dom, uri, name, params["bandwidth_mib_s"])
    return {"dirty_rate_mib_s": rate, "calc_s": params["calc_s"], "mode": params["mode"], "memory_mib": memory_mib, "bandwidth_mib_s": link,
            "estimate": _convergence.estimate(memory_mib, rate, link, params["max_downtime_ms"])}


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        validate(module.params)
    except _validate.InputError as exc:
        module.fail_json(msg=str(exc))
    if not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib(_libvirt.LIBRARY_NAME), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    _libvirt.exit_with_read(module, module.params["uri"], lambda conn: read(conn, module.params))


if __name__ == "__main__":
    main()
