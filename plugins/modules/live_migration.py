#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: live_migration
short_description: Live-migrate a libvirt domain to another host and return libvirt's job statistics
version_added: 0.1.0
description:
  - Runs on the source hypervisor. Sets the domain's maximum downtime, then migrates the running domain to
    O(destination_uri) with C(virDomainMigrate3) (managed migration, the equivalent of C(virsh migrate --live))
    or, with O(peer2peer=true), C(virDomainMigrateToURI3), and waits for the job to end.
  - The migration call runs in a worker thread while the module waits; past O(timeout_s) it calls C(abortJob), waits
    up to 60 s for the job to end, reads again where the domain is on both hosts and fails, saying what the abort did
    and where the domain runs. It says "the job was aborted" only when C(abortJob) succeeded and the job ended; when
    C(abortJob) fails or the job goes on, the message says so and RV(outcome) is V(unknown).
  - Whatever happened, the domain's state on both hosts is read again after the migration call, and RV(outcome) says
    what became of it. A migration that libvirt reports as done must leave the domain running on the destination
    and not active on the source; otherwise the module fails naming where it runs.
  - A host whose libvirt cannot be asked is reported as V(unknown) in RV(placement), with the error in
    RV(placement_errors), never as V(not defined).
  - To measure the downtime from QEMU's trace events, mark both hosts' logs before the call with
    M(openeuler.kae.qemu_trace_events) (O(openeuler.kae.qemu_trace_events#module:mark=true)) and read them after it.
    The source's read can be done here instead, which saves a host call. Give the source's mark as O(trace_offset)
    and O(trace_inode), and RV(source_events) holds what M(openeuler.kae.qemu_trace_events) would have returned.
  - With O(destination_devices) it maps the guest's KAE VFs to free VFs of the destination before migrating, as
    M(openeuler.kae.hostdev_remap) does, and migrates with the remapped XML; the owners of the destination's VFs are
    read again through the destination connection just before, so facts read earlier never count a VF as free.
  - The destination's connection is watched with libvirt keepalive messages (every 5 s, closed after 3 unanswered), so
    a destination that stops answering during the migration (a cut link) fails the calls waiting on it within about
    20 s instead of blocking the abort and the read-back until TCP gives up.
  - After a successful migration it returns libvirt's completed-job statistics. They are read on the source while
    the domain is still defined there (a persistent domain without O(undefine_source=true)), otherwise on the
    destination, where libvirt (checked with 9.0) keeps the same figures for the incoming job; RV(job.read_from)
    says which. They are read without being cleared, so C(virsh domjobinfo --completed) still shows them.
  - Idempotent. When the domain already runs on the destination and not on the source, nothing happens and the
    result is C(changed=false).
  - Pre-flight checks, which are all that check mode does, verify that the options are consistent, the domain exists and runs on the
    source, the destination's libvirt answers (a connection is opened), the domain is not active there, and no job
    (for example another migration) is running on the domain.
  - libvirt is used through its Python binding only; no command line is built.
author:
  - openEuler KAE collection contributors (@openeuler)
requirements:
  - libvirt-python (python3-libvirt) on the source host
extends_documentation_fragment:
  - openeuler.kae.attributes
attributes:
  check_mode:
    support: full
    details:
      - Runs the pre-flight checks and predicts C(changed=true), or C(changed=false) when the domain already runs
        on the destination.
  diff_mode:
    support: full
    details:
      - Shows the host the domain runs on before and after.
options:
  domain:
    description: Name of the libvirt domain to migrate.
    type: str
    required: true
  destination_uri:
    description:
      - libvirt connection URI of the destination host, as seen from the source host, for example
        V(qemu+ssh://kae-lab-b/system). The module opens it in every mode, so a destination that is down fails
        the pre-flight checks with the domain untouched.
    type: str
    required: true
  migrate_uri:
    description:
      - Hypervisor URI the migration data goes to, for example V(tcp://kae-lab-b) (libvirt's C(migrate_uri)
        parameter). Without it libvirt picks the destination's host name.
      - Cannot be used with O(tunnelled=true).
    type: str
  source_uri:
    description: libvirt connection URI of the source host, opened on the host the module runs on.
    type: str
    default: qemu:///system
  max_downtime_ms:
    description:
      - Maximum tolerable downtime in milliseconds, set on the domain before migrating
        (C(virDomainMigrateSetMaxDowntime), the same as C(virsh migrate-setmaxdowntime)).
      - From V(1) to V(2000000); QEMU refuses a C(downtime-limit) above 2000 s.
    type: int
    default: 100
  live:
    description: Migrate without pausing the domain first (libvirt's C(VIR_MIGRATE_LIVE)).
    type: bool
    default: true
  peer2peer:
    description:
      - Let the source libvirtd drive the migration and connect to the destination itself
        (C(VIR_MIGRATE_PEER2PEER), C(virsh migrate --p2p)). The source libvirtd then needs its own access to
        O(destination_uri), for example root ssh keys for V(qemu+ssh://).
    type: bool
    default: false
  tunnelled:
    description:
      - Send the migration data through libvirtd's connection instead of a direct hypervisor connection
        (C(VIR_MIGRATE_TUNNELLED)). Needs O(peer2peer=true); excludes O(migrate_uri), O(parallel) and O(tls).
    type: bool
    default: false
  unsafe:
    description:
      - Skip libvirt's migration safety check (C(VIR_MIGRATE_UNSAFE), C(virsh migrate --unsafe)). libvirt refuses to
        migrate a domain whose disks use a cache mode other than C(none) on storage it cannot prove shared; setups
        with passthrough devices or shared storage that libvirt does not recognise trip that check, and the
        openEuler KAE migration procedure passes C(--unsafe) for that reason.
      - This is an explicit opt-in. With storage that really is not shared or coherent, skipping the check can
        corrupt the guest's disks; enable it only when the storage setup is known to be safe.
    type: bool
    default: false
  persist_dest:
    description: Make the domain persistent on the destination (C(VIR_MIGRATE_PERSIST_DEST)).
    type: bool
    default: false
  undefine_source:
    description:
      - Undefine the domain on the source after a successful migration (C(VIR_MIGRATE_UNDEFINE_SOURCE)).
        Completed-job statistics are then read on the destination.
    type: bool
    default: false
  abort_on_error:
    description: Abort the migration on an I/O error during it (C(VIR_MIGRATE_ABORT_ON_ERROR)).
    type: bool
    default: false
  auto_converge:
    description: Let QEMU throttle the vCPUs when the guest dirties memory faster than it is sent (C(VIR_MIGRATE_AUTO_CONVERGE)).
    type: bool
    default: false
  tls:
    description: Encrypt the migration data with TLS (C(VIR_MIGRATE_TLS)); both hosts need libvirt's migration TLS set up.
    type: bool
    default: false
  parallel:
    description: Send the migration data over several connections (C(VIR_MIGRATE_PARALLEL)); see O(parallel_connections).
    type: bool
    default: false
  parallel_connections:
    description: Number of connections for a parallel migration, from V(1) to V(255) (QEMU's C(multifd-channels)). Needs O(parallel=true).
    type: int
  bandwidth_mib_s:
    description:
      - Bandwidth limit of the migration in MiB/s (libvirt's C(bandwidth) parameter), from V(1) to V(8796093022207)
        (libvirt's limit). Without it libvirt's default applies.
    type: int
  destination_xml:
    description:
      - Domain XML to use on the destination, for example with the KAE VFs remapped to free VFs of the destination.
        It may only differ from the source's XML in host-side details that libvirt accepts.
    type: str
  persistent_xml:
    description: Domain XML to store as the persistent definition on the destination (with O(persist_dest=true)).
    type: str
  destination_devices:
    description:
      - The destination's KAE device facts (RV(openeuler.kae.device_info#module:devices) read there, or the
        RV(source_devices) of an earlier migration from there). When given, the guest's KAE VFs are mapped to free VFs
        of the destination (the same rules as M(openeuler.kae.hostdev_remap)) before the migration, and the migration
        uses the remapped XML (RV(remap)). The source's devices are read from O(source_sysfs_root) on this host.
      - The owners of the destination's VFs in these facts are not trusted; they are read again from the destination's
        libvirt, and a destination whose libvirt cannot say who holds its VFs is a refusal (nothing migrates).
      - Mutually exclusive with O(destination_xml) and O(persistent_xml).
    type: list
    elements: dict
  source_sysfs_root:
    description:
      - Root of the source host's sysfs tree, where its KAE devices are read for the remap of O(destination_devices)
        (named like O(source_uri), since this module works on two hosts; the other modules call it C(sysfs_root)).
    type: path
    default: /sys
  trace_offset:
    description:
      - After a successful migration, read the source's QEMU log of the domain (C(/var/log/libvirt/qemu/DOMAIN.log))
        from this byte offset, a RV(openeuler.kae.qemu_trace_events#module:next_offset) taken before the migration,
        and return the trace events of O(profile) as RV(source_events).
      - When the source's pause event is not in the log yet, the read is repeated for up to 1 s.
    type: int
  trace_inode:
    description: The RV(openeuler.kae.qemu_trace_events#module:inode) returned with O(trace_offset); a log rotated since is read from its start.
    type: int
  profile:
    description:
      - The downtime profile whose events RV(source_events) keeps, as in M(openeuler.kae.qemu_trace_events).
    type: str
    default: auto
    choices: [auto, openeuler, upstream, downtime_checkpoint]
  timeout_s:
    description:
      - How long to wait for the migration, in seconds; a finite number greater than 0. Past it the job is aborted
        and the module fails; RV(outcome) and RV(placement) say where the domain was left.
    type: float
    default: 300
notes:
  - The O(timeout_s) check runs about twice a second, so the abort happens up to half a second after the deadline.
  - Numbers given as text must use the digits 0-9; C(nan), C(inf) and out-of-range values are refused before
    libvirt is called.
  - libvirt's C(downtime) in RV(job) is measured across both hosts' clocks, like the trace-based downtime of
    M(openeuler.kae.qemu_trace_events) and the P(openeuler.kae.migration_downtime#filter) filter.
seealso:
  - module: openeuler.kae.qemu_trace_events
  - module: openeuler.kae.clock_offset
  - name: virDomainMigrate3 (libvirt API)
    description: The libvirt call behind a managed migration, with its flags and parameters.
    link: https://libvirt.org/html/libvirt-libvirt-domain.html#virDomainMigrate3
"""

EXAMPLES = r"""
- name: Migrate the guest as the openEuler procedure does (virsh migrate --live --unsafe ... tcp://DST)
  openeuler.kae.live_migration:
    domain: kae-guest
    destination_uri: qemu+ssh://kae-lab-b/system
    migrate_uri: tcp://kae-lab-b
    max_downtime_ms: 100
    unsafe: true
    timeout_s: 120
  register: migration

- name: Show libvirt's own downtime figure
  ansible.builtin.debug:
    msg: "{{ migration.job.downtime_ms }} ms (libvirt) after {{ migration.duration_s }} s"

- name: Peer-to-peer migration that keeps the domain defined on the destination only
  openeuler.kae.live_migration:
    domain: kae-guest
    destination_uri: qemu+ssh://kae-lab-b/system
    peer2peer: true
    persist_dest: true
    undefine_source: true
    bandwidth_mib_s: 1024
    parallel: true
    parallel_connections: 4
"""

RETURN = r"""
remap:
  description:
    - With O(destination_devices), where the guest's KAE VFs go on the destination, as
      M(openeuler.kae.hostdev_remap) returns it (mapping, numa_node, remapped, destination_xml, persistent_xml).
  returned: with O(destination_devices), once the guest was found on the source
  type: dict
  sample: {"mapping": {"0000:75:00.1": "0000:75:00.2"}, "numa_node": 0, "remapped": true, "destination_xml": "<domain ...>",
           "persistent_xml": null}
source_devices:
  description:
    - With O(destination_devices), the source's KAE devices read for the remap, with their owners read from the
      source's libvirt before the migration (the shape of RV(openeuler.kae.device_info#module:devices)). A later
      migration back to this host can pass them as O(destination_devices); their owners are read again then.
  returned: with O(destination_devices), once the guest was found on the source
  type: list
  elements: dict
source_events:
  description:
    - With O(trace_offset), the source log's trace events since that mark, with the keys that
      M(openeuler.kae.qemu_trace_events) returns (events, next_offset, size, inode, rotated, more, exists, log_path).
  returned: with O(trace_offset), after a successful migration
  type: dict
  sample: {"events": [{"ts": 1795629893.041251, "tid": 219, "name": "vm_state_notify", "args": "running 0 reason 7 (finish-migrate)"}],
           "next_offset": 20480, "size": 20530, "inode": 393231, "rotated": false, "more": false, "exists": true,
           "log_path": "/var/log/libvirt/qemu/kae-guest.log"}
source_events_error:
  description: Why the source's log could not be read after a successful migration (RV(source_events) is then absent).
  returned: with O(trace_offset), when the read failed
  type: str
msg:
  description: What was done, or what would be done in check mode.
  returned: always
  type: str
  sample: migrated kae-guest from kae-lab-a to kae-lab-b in 1.042 s
source_host:
  description: Host name of the source, as its libvirt reports it.
  returned: always
  type: str
  sample: kae-lab-a
destination_host:
  description: Host name of the destination, as its libvirt reports it.
  returned: always
  type: str
  sample: kae-lab-b
placement:
  description:
    - State of the domain on each host (by host name) after the module ran, for example V(running), V(shut off) or
      V(not defined). After a successful migration exactly one host shows V(running).
    - V(unknown) for a host whose libvirt could not be asked (RV(placement_errors) says why); such a host may or may
      not run the domain.
  returned: when both hosts' libvirt connections were opened
  type: dict
  sample: {"kae-lab-a": "shut off", "kae-lab-b": "running"}
placement_errors:
  description: Why the domain's state could not be read, by host name; empty when both hosts answered.
  returned: when both hosts' libvirt connections were opened
  type: dict
  sample: {"kae-lab-b": "cannot look up domain kae-guest on qemu+ssh://kae-lab-b/system: Cannot recv data: Connection reset by peer"}
keepalive:
  description:
    - Whether libvirt watches the destination's connection with keepalive messages; false for a connection that
      cannot (a driver without keepalive).
  returned: when the destination's libvirt connection was opened
  type: bool
  sample: true
outcome:
  description:
    - What became of the migration, from the domain's state on both hosts read after the migration call.
    - V(migrated) it runs on the destination and is not active on the source.
    - V(aborted) the job was aborted (C(abortJob) succeeded and the job ended) and the domain is active on the source
      and not on the destination.
    - V(failed) the migration ended with an error (or ended by itself after a failed C(abortJob)) and the domain is
      active on the source and not on the destination.
    - V(unknown) anything else, including a host that could not be asked and a job that did not end after the abort;
      check both hosts before doing anything else with the domain.
  returned: when a migration was attempted, and when the domain already ran on the destination
  type: str
  choices: [migrated, aborted, failed, unknown]
  sample: migrated
flags:
  description: The migration options that set a libvirt flag.
  returned: always
  type: list
  elements: str
  sample: [live, unsafe]
versions:
  description: libvirt and hypervisor (QEMU) versions of the host the module runs on (O(source_uri)).
  returned: always
  type: dict
  contains:
    libvirt:
      description: libvirt version.
      type: str
      sample: 9.0.0
    qemu:
      description: Hypervisor (QEMU) version.
      type: str
      sample: 7.2.0
guest:
  description: Size of the domain, read on the host where it runs.
  returned: always
  type: dict
  contains:
    name:
      description: Domain name.
      type: str
      sample: kae-guest
    vcpus:
      description: Number of vCPUs.
      type: int
      sample: 8
    memory_mib:
      description: Maximum memory in MiB.
      type: int
      sample: 16384
aborted:
  description:
    - After O(timeout_s) passed (the module then fails), true when C(abortJob) succeeded and the job ended, false
      when C(abortJob) failed or the job did not end within 60 s.
  returned: when the migration did not finish within O(timeout_s)
  type: bool
  sample: true
started_at:
  description: Time the migration call started, seconds since the epoch on the source host's clock.
  returned: when a migration ran
  type: float
  sample: 1795629892.0127
duration_s:
  description: Wall time of the migration call, in seconds.
  returned: when a migration ran
  type: float
  sample: 1.042
job:
  description:
    - libvirt's completed-job statistics of the migration. Keys that libvirt did not report are null.
  returned: when a migration ran
  type: dict
  contains:
    downtime_ms:
      description: libvirt's downtime, from the source pausing the guest to the destination resuming it.
      type: int
      sample: 21
    downtime_net_ms:
      description: The same without the time spent handing control over between the daemons.
      type: int
      sample: 20
    total_time_ms:
      description: Duration of the migration job.
      type: int
      sample: 1003
    total_time_net_ms:
      description: Duration of the job without the control hand-over.
      type: int
      sample: 1001
    setup_time_ms:
      description: Time QEMU spent setting the migration up.
      type: int
      sample: 2
    data_total_bytes:
      description: Total data to transfer.
      type: int
      sample: 135536640
    data_processed_bytes:
      description: Data transferred.
      type: int
      sample: 28467200
    data_remaining_bytes:
      description: Data left (0 once completed).
      type: int
      sample: 0
    memory_total_bytes:
      description: Guest memory size.
      type: int
      sample: 135536640
    memory_processed_bytes:
      description: Guest memory transferred.
      type: int
      sample: 28467200
    memory_remaining_bytes:
      description: Guest memory left.
      type: int
      sample: 0
    memory_bytes_per_s:
      description: Memory transfer rate.
      type: int
      sample: 117440512
    memory_dirty_pages_per_s:
      description: Rate at which the guest dirtied pages.
      type: int
      sample: 1200
    memory_iterations:
      description: Number of memory copy passes.
      type: int
      sample: 3
    read_from:
      description: Where the statistics were read, V(source) or V(destination); V(none) when libvirt kept none (a warning says so).
      type: str
      sample: source
    stats:
      description: Every statistic exactly as libvirt returned it (C(virDomainGetJobStats) keys).
      type: dict
      sample: {"type": 3, "operation": 5, "downtime": 21, "time_elapsed": 1003}
"""

import time

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.openeuler.kae.plugins.module_utils import _args, _devices, _libvirt, _logread, _migration, _trace, _validate
from ansible_collections.openeuler.kae.plugins.module_utils._domain_xml import DomainXMLError
from ansible_collections.openeuler.kae.plugins.module_utils._remap import RemapError, migration_remap
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs, SysfsError

# How often the waiting loop wakes up, and how long an aborted job may take to end.
POLL_INTERVAL_S = 0.5
ABORT_GRACE_S = 60.0
# virtlogd copies QEMU's output into the log: how long the source's pause event may take to get there.
SOURCE_LOG_WAIT_S = 1.0
SOURCE_LOG_POLL_S = 0.05


def argument_spec():
    return dict(
        source_sysfs_root=dict(type="path", default=_args.DEFAULT_SYSFS_ROOT),
        domain=dict(type="str", required=True),
        destination_uri=dict(type="str", required=True),
        migrate_uri=dict(type="str"),
        source_uri=dict(type="str", default="qemu:///system"),
        max_downtime_ms=dict(type="int", default=100),
        live=dict(type="bool", default=True),
        peer2peer=dict(type="bool", default=False),
        tunnelled=dict(type="bool", default=False),
        unsafe=dict(type="bool", default=False),
        persist_dest=dict(type="bool", default=False),
        undefine_source=dict(type="bool", default=False),
        abort_on_error=dict(type="bool", default=False),
        auto_converge=dict(type="bool", default=False),
        tls=dict(type="bool", default=False),
        parallel=dict(type="bool", default=False),
        parallel_connections=dict(type="int"),
        bandwidth_mib_s=dict(type="int"),
        destination_xml=dict(type="str"),
        persistent_xml=dict(type="str"),
        timeout_s=dict(type="float", default=300.0),
        destination_devices=dict(type="list", elements="dict"),
        trace_offset=dict(type="int"),
        trace_inode=dict(type="int"),
        profile=dict(type="str", default="auto", choices=list(_trace.PROFILE_CHOICES)),
    )


def read_option_problems(params):
    """Sentences for the options of the remap and the source's log read that have the wrong form."""
    problems = []
    try:
        _validate.text(params["source_sysfs_root"], "source_sysfs_root (the root of a sysfs tree such as /sys)")
    except _validate.InputError as exc:
        problems.append(str(exc))
    for name in ("trace_offset", "trace_inode"):
        try:
            if params[name] is not None:
                _validate.number(params[name], name, minimum=0, integer=True)
        except _validate.InputError as exc:
            problems.append(str(exc))
    return problems


def read_source_events(name, params, wait_s=SOURCE_LOG_WAIT_S):
    """qemu_trace_events' read of NAME's log from the mark in PARAMS, repeated until the pause event is there or WAIT_S passed."""
    path = _logread.domain_log_path(name)
    deadline = time.monotonic() + wait_s
    while True:
        found = _logread.read_events(path, offset=params["trace_offset"], inode=params["trace_inode"],
                                     names=_trace.profile_event_names(params["profile"]))
        if _trace.has_pause(found["events"], params["profile"]) or time.monotonic() >= deadline:
            return dict(found, log_path=path)
        time.sleep(SOURCE_LOG_POLL_S)


def libvirt_call(what, host, func, *args):
    """Call a libvirt method, turning its error into a LibvirtFailure naming the operation and the host."""
    try:
        return func(*args)
    except _libvirt.libvirt.libvirtError as exc:
        raise _libvirt.LibvirtFailure("%s on %s failed: %s" % (what, host, _libvirt.error_text(exc))) from exc


def host_name(conn, uri):
    """The host name libvirt reports for CONN, or URI itself when it cannot say."""
    try:
        return conn.getHostname()
    except _libvirt.libvirt.libvirtError:
        return uri


def domain_and_state(conn, host, name):
    """(domain or None, state name, error or None) of NAME on CONN; the state is UNKNOWN, with the error, when libvirt cannot say."""
    try:
        dom = _libvirt.lookup_domain(conn, name)
        if dom is None:
            return None, _migration.ABSENT, None
        state = dom.state()
    except _libvirt.LibvirtFailure as exc:
        return None, _migration.UNKNOWN, str(exc)
    except _libvirt.libvirt.libvirtError as exc:
        if exc.get_error_code() == _libvirt.libvirt.VIR_ERR_NO_DOMAIN:
            # Gone between the look-up and the state: a transient domain that has just migrated away.
            return None, _migration.ABSENT, None
        return None, _migration.UNKNOWN, "reading the state of %s on %s failed: %s" % (name, host, _libvirt.error_text(exc))
    return dom, _migration.state_name(state[0]), None


def host_versions(conn, host):
    """libvirt and hypervisor (QEMU) versions of HOST."""
    return {
        "libvirt": _migration.version_text(libvirt_call("reading the libvirt version", host, conn.getLibVersion)),
        "qemu": _migration.version_text(libvirt_call("reading the hypervisor version", host, conn.getVersion)),
    }


def guest_size(host, dom, name):
    """vCPUs and memory of the domain DOM on HOST."""
    return _migration.guest_summary(name, libvirt_call("reading the size of %s" % name, host, dom.info))


class Migration:
    """One migration request: both connections, the domain and the result being built."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.name = module.params["domain"]
        self.src_conn = None
        self.dst_conn = None
        self.src_host = None
        self.dst_host = None
        self.result = {"changed": False}
        # The XMLs to migrate with: the options', or the remap's.
        self.xmls = {"destination_xml": self.params["destination_xml"], "persistent_xml": self.params["persistent_xml"]}

    def connect(self):
        self.src_conn = _libvirt.connect(self.params["source_uri"])
        self.src_host = host_name(self.src_conn, self.params["source_uri"])
        self.dst_conn = _libvirt.connect(self.params["destination_uri"])
        # A destination that stops answering mid-migration (cut link) must not block the abort and the read-back.
        self.result["keepalive"] = _libvirt.keep_alive(self.dst_conn)
        self.dst_host = host_name(self.dst_conn, self.params["destination_uri"])
        self.result.update(source_host=self.src_host, destination_host=self.dst_host)

    def close(self):
        for conn in (self.src_conn, self.dst_conn):
            if conn is not None:
                try:
                    conn.close()
                except _libvirt.libvirt.libvirtError:
                    pass

    def placement(self):
        """Record where the domain is on both hosts now (placement, placement_errors); return (source domain, destination domain)."""
        src_dom, src_state, src_error = domain_and_state(self.src_conn, self.src_host, self.name)
        dst_dom, dst_state, dst_error = domain_and_state(self.dst_conn, self.dst_host, self.name)
        self.result["placement"] = {self.src_host: src_state, self.dst_host: dst_state}
        self.result["placement_errors"] = dict((host, error) for host, error in ((self.src_host, src_error), (self.dst_host, dst_error)) if error)
        return src_dom, dst_dom

    def where(self):
        """The recorded placement for messages: 'a: running, b: unknown (why)'."""
        return _migration.describe_placement(self.result["placement"], self.result["placement_errors"])

    def outcome(self, aborted=False):
        """Record and return what became of the migration, judged from the recorded placement."""
        self.result["outcome"] = _migration.outcome(self.result["placement"], self.src_host, self.dst_host, aborted)
        return self.result["outcome"]

    def fail(self, msg):
        self.module.fail_json(msg=msg, **self.result)

    def run(self):
        """Pre-flight, then migrate (unless check mode or nothing to do); exits the module."""
        params = self.params
        flags, flag_names = _migration.migration_flags(params, _libvirt.libvirt)
        self.result.update(flags=flag_names)
        self.connect()
        if self.src_host == self.dst_host:
            self.fail("%s and %s both lead to %s: a domain cannot migrate to the host it runs on; check destination_uri"
                      % (params["source_uri"], params["destination_uri"], self.src_host))
        src_dom, dst_dom = self.placement()
        placement = self.result["placement"]
        decision, message = _migration.placement_decision(
            self.name, self.src_host, placement[self.src_host], self.dst_host, placement[self.dst_host])
        if decision == "error":
            self.fail(message)
        self.result["versions"] = host_versions(self.src_conn, self.src_host)
        if decision == "done":
            self.result["guest"] = guest_size(self.dst_host, dst_dom, self.name)
            self.result["outcome"] = _migration.MIGRATED
            self.module.exit_json(msg=message, **self.result)
        self.result["guest"] = guest_size(self.src_host, src_dom, self.name)
        job_type = libvirt_call("reading the job of %s" % self.name, self.src_host, src_dom.jobInfo)[0]
        if job_type != _migration.JOB_NONE:
            self.fail("%s already has a job running on %s (job type %s), perhaps another migration; "
                      "wait for it to end or abort it first" % (self.name, self.src_host, job_type))
        if params["destination_devices"] is not None:
            self.remap(src_dom)
        self.result["changed"] = True
        if self.module._diff:
            self.result["diff"] = {"before": {"running_on": self.src_host}, "after": {"running_on": self.dst_host}}
        if self.module.check_mode:
            self.module.exit_json(msg="would migrate %s from %s to %s" % (self.name, self.src_host, self.dst_host), **self.result)
        libvirt_call("setting the maximum downtime of %s" % self.name, self.src_host,
                     src_dom.migrateSetMaxDowntime, params["max_downtime_ms"], 0)
        self.migrate(src_dom, flags, _migration.migration_params(dict(params, **self.xmls)))

    def remap(self, src_dom):
        """Map the guest's KAE VFs to free VFs of the destination, with every VF's owner read now through both connections."""
        try:
            source = _devices.scan(Sysfs(self.params["source_sysfs_root"]))
        except (SysfsError, _devices.DeviceError) as exc:
            self.fail("reading the KAE devices of %s under %s for the remap of %s failed: %s"
                      % (self.src_host, self.params["source_sysfs_root"], self.name, exc))
        _devices.with_owners(source, *_devices.connection_owners(self.src_conn, self.params["source_uri"]))
        destination = _devices.with_owners([dict(device) for device in self.params["destination_devices"]],
                                           *_devices.connection_owners(self.dst_conn, self.params["destination_uri"]))
        flags = _libvirt.libvirt.VIR_DOMAIN_XML_MIGRATABLE
        live = libvirt_call("reading the XML of %s" % self.name, self.src_host, src_dom.XMLDesc, flags)
        persistent = None
        if libvirt_call("reading whether %s is persistent" % self.name, self.src_host, src_dom.isPersistent):
            persistent = libvirt_call("reading the definition of %s" % self.name, self.src_host, src_dom.XMLDesc,
                                      flags | _libvirt.libvirt.VIR_DOMAIN_XML_INACTIVE)
        self.result["source_devices"] = source
        try:
            self.result["remap"] = migration_remap(live, persistent, source, destination, destination=self.dst_host)
        except (RemapError, DomainXMLError, _validate.InputError) as exc:
            self.fail("remap of %s's KAE VFs from %s to %s: %s; nothing was migrated" % (self.name, self.src_host, self.dst_host, exc))
        if self.result["remap"]["remapped"]:
            self.xmls = dict((key, self.result["remap"][key]) for key in self.xmls)

    def migrate_call(self, src_dom, flags, typed):
        """The blocking libvirt call for this kind of migration."""
        if self.params["peer2peer"]:
            return lambda: src_dom.migrateToURI3(self.params["destination_uri"], typed, flags)
        return lambda: src_dom.migrate3(self.dst_conn, typed, flags)

    def migrate(self, src_dom, flags, typed):
        worker = _migration.Worker(self.migrate_call(src_dom, flags, typed))
        started_at = time.time()
        deadline = time.monotonic() + self.params["timeout_s"]
        abort = None
        worker.start()
        while True:
            action = _migration.poll_action(time.monotonic(), deadline, not worker.is_alive())
            if action == "done":
                break
            if action == "abort":
                abort = self.abort(src_dom, worker)
                break
            worker.join(POLL_INTERVAL_S)
        duration_s = time.time() - started_at
        self.result.update(started_at=round(started_at, 6), duration_s=round(duration_s, 3))
        # Where the domain is now, asked again whatever happened: nothing below trusts an earlier answer.
        self.placement()
        if abort is not None and (not abort["ended"] or worker.error is not None):
            self.fail_timeout(abort)
        if worker.error is not None:
            self.fail_migration(worker.error)
        if abort is not None:
            self.module.warn("the migration of %s finished as it was being aborted after %s s" % (self.name, self.params["timeout_s"]))
        if self.outcome() != _migration.MIGRATED:
            self.fail("libvirt reported the migration of %s from %s to %s as done, but %s is not running on %s alone (%s): "
                      "check both hosts" % (self.name, self.src_host, self.dst_host, self.name, self.dst_host, self.where()))
        self.result["job"] = self.completed_job(src_dom)
        if self.params["trace_offset"] is not None:
            self.source_events()
        self.module.exit_json(msg="migrated %s from %s to %s in %.3f s" % (self.name, self.src_host, self.dst_host, duration_s),
                              **self.result)

    def source_events(self):
        """Read the source's trace events of the migration into the result; a failed read is said, not fatal: the guest moved."""
        try:
            self.result["source_events"] = read_source_events(self.name, self.params)
        except _logread.LogReadError as exc:
            self.result["source_events_error"] = str(exc)
            self.module.warn("the migration went well, but the source's QEMU log could not be read: %s" % exc)

    def abort(self, src_dom, worker):
        """Ask libvirt to abort the job and wait up to ABORT_GRACE_S for it to end.

        Returns {"error": abortJob's error or None, "ended": whether the job ended, "grace_s", "progress"}.
        """
        try:
            progress = _migration.progress_text(src_dom.jobStats())
        except _libvirt.libvirt.libvirtError:
            progress = ""
        error = None
        try:
            src_dom.abortJob()
        except _libvirt.libvirt.libvirtError as exc:
            error = _libvirt.error_text(exc)
        worker.join(ABORT_GRACE_S)
        return {"error": error, "ended": not worker.is_alive(), "grace_s": ABORT_GRACE_S, "progress": progress}

    def fail_timeout(self, abort):
        """Fail after the deadline, saying what the abort did and where the domain runs."""
        took = abort["ended"] and abort["error"] is None
        self.result["aborted"] = took
        if abort["ended"]:
            self.outcome(aborted=took)
        else:
            # The job may still move the domain: nothing about its place is settled.
            self.result["outcome"] = _migration.UNKNOWN
        self.fail(_migration.timeout_message(self.name, self.src_host, self.dst_host, self.params["timeout_s"], abort["progress"],
                                             self.result["placement"], self.result["placement_errors"], abort))

    def fail_migration(self, error):
        """Fail after libvirt's migration call raised, saying where the domain runs."""
        outcome = self.outcome()
        tail = {
            _migration.UNKNOWN: ": where it runs is not certain; check both hosts",
            _migration.MIGRATED: ": it runs on %s alone although libvirt reported the error" % self.dst_host,
        }.get(outcome, "")
        placement = self.result["placement"]
        if placement[self.src_host] == "running" and placement[self.dst_host] == _migration.UNKNOWN:
            # Running on the source is known; only the destination could not be asked.
            tail = (": it is still running on %s, but %s could not be asked whether it holds a copy: check %s before touching %s there"
                    % (self.src_host, self.dst_host, self.dst_host, self.name))
        self.fail("migration of %s from %s to %s failed: %s; the domain is now %s%s" % (
            self.name, self.src_host, self.dst_host, _libvirt.error_text(error), self.where(), tail))

    def completed_job(self, src_dom):
        """libvirt's completed-job statistics: from the source while the domain is defined there, else the destination."""
        # KEEP_COMPLETED leaves the figures in place for virsh domjobinfo --completed.
        flags = _libvirt.libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED | _libvirt.libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED
        try:
            stats = src_dom.jobStats(flags)
        except _libvirt.libvirt.libvirtError:
            stats = None
        if _migration.is_completed_job(stats):
            return _migration.shape_job(stats, "source")
        dst_dom = _libvirt.lookup_domain(self.dst_conn, self.name)
        if dst_dom is not None:
            stats = libvirt_call("reading the completed job of %s" % self.name, self.dst_host, dst_dom.jobStats, flags)
            if _migration.is_completed_job(stats):
                return _migration.shape_job(stats, "destination")
        self.module.warn("libvirt kept no completed-job statistics for %s on %s nor on %s" % (self.name, self.src_host, self.dst_host))
        return _migration.shape_job({}, "none")


def main():
    spec, problem = _validate.screen_number_options(basic._load_params(), argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=[("destination_devices", "destination_xml"), ("destination_devices", "persistent_xml")],
                           required_by={"trace_inode": "trace_offset"})
    problems = [problem] if problem else _migration.option_problems(module.params) + read_option_problems(module.params)
    if problems:
        module.fail_json(msg="; ".join(problems))
    if not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib(_libvirt.LIBRARY_NAME), exception=_libvirt.LIBVIRT_IMPORT_ERROR)
    _libvirt.start_event_loop()
    migration = Migration(module)
    try:
        migration.run()
    except _libvirt.LibvirtFailure as exc:
        migration.fail(str(exc))
    finally:
        migration.close()


if __name__ == "__main__":
    main()
