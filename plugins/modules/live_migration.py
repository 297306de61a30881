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
  - The migration call runs in a worker thread while the module waits. Every O(progress_interval_s) it reads the
    job's statistics into a progress sample (RV(progress)), raises the maximum downtime when O(downtime_schedule) says
    so, and checks the limits, which are O(timeout_s), O(progress_timeout_s) (remaining data not going down) and
    O(completion_timeout_s_per_gib) (scaled by the guest's memory).
  - When a limit fires it calls C(abortJob) (or, with O(at_limit=suspend), pauses the guest so that the migration
    completes), waits up to 60 s for the job to end, reads again where the domain is on both hosts and fails, saying
    which limit fired, what the last sample says about convergence, what the abort did and where the domain runs. It
    says "the job was aborted" only when C(abortJob) succeeded and the job ended; when C(abortJob) fails or the job
    goes on, the message says so and RV(outcome) is V(unknown).
  - To show the progress while the migration runs, start this module as an async task and poll
    M(openeuler.kae.migration_job_info) on the source (see the examples).
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
  destination_vfs:
    description:
      - With O(destination_devices), the only destination VFs the remap may give the guest (as
        M(openeuler.kae.hostdev_remap)'s O(openeuler.kae.hostdev_remap#module:allowed_vfs)), for example the VFs a
        placement plan chose, so that concurrent migrations into one host never choose the same VF.
    type: list
    elements: str
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
  progress_interval_s:
    description:
      - How often the job's statistics are read into a progress sample, in seconds. The schedule and the progress and
        completion limits are looked at with each sample, so they act up to this long after they are due.
    type: float
    default: 2.0
  progress_timeout_s:
    description:
      - Abort (or, with O(at_limit=suspend), pause the guest) when the data left to send has not gone below its
        lowest value for this long, in seconds. A pre-copy pass re-sends what the guest dirtied, so the remaining
        figure rises between passes; only a new lowest value counts as progress. KubeVirt's C(progressTimeout) is
        the same idea, 150 s by default.
    type: float
    default: 150.0
  completion_timeout_s_per_gib:
    description:
      - Abort (or, with O(at_limit=suspend), pause the guest) when the migration has run longer than this many seconds
        per GiB of the guest's memory (OpenStack Nova's C(live_migration_completion_timeout) and KubeVirt's
        C(completionTimeoutPerGiB) scale the same way). Without it only O(timeout_s) bounds the total time.
    type: float
  downtime_schedule:
    description:
      - Raise the maximum downtime while the migration runs, from O(max_downtime_ms) in O(downtime_schedule.steps)
        equal steps up to O(downtime_schedule.ceiling_ms). RV(max_downtime_steps) says when each step came and
        RV(max_downtime_final_ms) the value the migration completed at.
    type: dict
    suboptions:
      steps:
        description: Number of raises, at least 1.
        type: int
        required: true
      delay_s:
        description: Seconds between raises (counted as O(downtime_schedule.mode) says).
        type: float
        required: true
      ceiling_ms:
        description:
          - The last value, above O(max_downtime_ms) and at most 2000000. A sensible ceiling is the downtime the
            report accepts (the migration role passes its threshold).
        type: int
        required: true
      mode:
        description:
          - V(time) raises every O(downtime_schedule.delay_s) from the start, as OpenStack Nova does.
          - V(stall) raises only after O(downtime_schedule.delay_s) without progress, counted again after each raise,
            as oVirt's convergence schedules do.
        type: str
        choices: [time, stall]
        default: time
  at_limit:
    description:
      - What to do when O(progress_timeout_s) or O(completion_timeout_s_per_gib) fires. V(abort) ends the migration
        and the guest goes on running on the source. V(suspend) pauses the guest on the source so that the migration
        completes (the guest is resumed on the destination; RV(suspended) says when it was paused). O(timeout_s)
        always aborts.
    type: str
    choices: [abort, suspend]
    default: abort
notes:
  - The limits are checked about twice a second, so an abort happens up to half a second after a limit is due
    (after the next progress sample for O(progress_timeout_s) and O(completion_timeout_s_per_gib)).
  - Post-copy is not offered, since VFIO devices cannot migrate with it.
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

- name: Migrate in the background with a stepwise downtime and a stall limit
  openeuler.kae.live_migration:
    domain: kae-guest
    destination_uri: qemu+ssh://kae-lab-b/system
    max_downtime_ms: 100
    downtime_schedule: {steps: 3, delay_s: 10, ceiling_ms: 400, mode: stall}
    progress_timeout_s: 60
    timeout_s: 600
  async: 660
  poll: 0
  register: started

- name: Show one progress line every 2 s until the job is gone
  openeuler.kae.migration_job_info:
    domain: kae-guest
  register: job
  until: not job.active
  retries: 330
  delay: 2

- name: Collect the migration's result
  ansible.builtin.async_status:
    jid: "{{ started.ansible_job_id }}"
  register: migration
  until: migration.finished
  retries: 30
  delay: 2

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
    - After a limit fired and the module aborted (it then fails), true when C(abortJob) succeeded and the job ended,
      false when C(abortJob) failed or the job did not end within 60 s.
  returned: when a limit made the module abort
  type: bool
  sample: true
limit:
  description: The limit that made the module abort or pause the guest; null when none fired.
  returned: when a migration ran
  type: dict
  contains:
    name:
      description: V(timeout_s), V(progress_timeout_s) or V(completion_timeout_s_per_gib).
      type: str
      sample: progress_timeout_s
    value_s:
      description: The limit in seconds (for the per-GiB limit, already scaled by the guest's memory).
      type: float
      sample: 150.0
    at_s:
      description: Seconds after the start of the migration when it fired.
      type: float
      sample: 152.4
suspended:
  description:
    - Set when O(at_limit=suspend) paused the guest on the source; null otherwise.
  returned: when a migration ran
  type: dict
  contains:
    at_s:
      description: Seconds after the start of the migration when the guest was paused.
      type: float
      sample: 31.9
    limit:
      description: The limit that fired.
      type: str
      sample: progress_timeout_s
    resumed_by:
      description:
        - V(libvirt) when the guest already ran on the destination after the migration, V(module) when the module
          resumed it there; null when the migration did not complete.
      type: str
      sample: libvirt
progress:
  description:
    - Progress samples taken every O(progress_interval_s) while the migration ran (at most 1000; past that every
      other one is dropped). Sizes in MiB, rates in MiB/s; a figure libvirt did not report is null.
  returned: when a migration ran
  type: list
  elements: dict
  contains:
    t_s:
      description: Seconds since the migration started.
      type: float
    elapsed_ms:
      description: libvirt's elapsed time of the job.
      type: int
    total_mib:
      description: Data to send in all.
      type: float
    processed_mib:
      description: Data sent so far.
      type: float
    remaining_mib:
      description: Data left to send.
      type: float
    rate_mib_s:
      description: Memory transfer rate.
      type: float
    dirty_rate_mib_s:
      description: Rate at which the guest dirties memory.
      type: float
    iteration:
      description: Pre-copy pass.
      type: int
    expected_downtime_ms:
      description: The downtime QEMU expects if it stopped the guest now.
      type: int
    auto_converge_throttle:
      description: vCPU throttle in percent applied by auto-converge.
      type: int
    max_downtime_ms:
      description: The maximum downtime in force when the sample was taken.
      type: int
  sample: [{"t_s": 2.0, "elapsed_ms": 2003, "total_mib": 192.6, "processed_mib": 150.2, "remaining_mib": 40.1,
            "rate_mib_s": 75.3, "dirty_rate_mib_s": 12.0, "iteration": 2, "expected_downtime_ms": 310,
            "auto_converge_throttle": null, "max_downtime_ms": 100}]
max_downtime_steps:
  description: When the maximum downtime was set or raised, first O(max_downtime_ms) at 0 s.
  returned: when a migration ran
  type: list
  elements: dict
  sample: [{"t_s": 0.0, "max_downtime_ms": 100}, {"t_s": 10.0, "max_downtime_ms": 200}]
max_downtime_final_ms:
  description: The maximum downtime in force when the migration ended, the step it converged at.
  returned: when a migration ran
  type: int
  sample: 200
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

from ansible_collections.openeuler.kae.plugins.module_utils import (
    _args, _convergence, _devices, _libvirt, _logread, _migration, _trace, _validate)
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
        progress_interval_s=dict(type="float", default=2.0),
        progress_timeout_s=dict(type="float", default=150.0),
        completion_timeout_s_per_gib=dict(type="float"),
        downtime_schedule=dict(type="dict", options=dict(
            steps=dict(type="int", required=True),
            delay_s=dict(type="float", required=True),
            ceiling_ms=dict(type="int", required=True),
            mode=dict(type="str", default="time", choices=list(_convergence.SCHEDULE_MODES)),
        )),
        at_limit=dict(type="str", default="abort", choices=list(_convergence.LIMIT_ACTIONS)),
        destination_devices=dict(type="list", elements="dict"),
        destination_vfs=dict(type="list", elements="str"),
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
    for index, bdf in enumerate(params["destination_vfs"] or []):
        try:
            _validate.bdf(bdf, "destination_vfs[%d]" % index)
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
            sysfs = Sysfs(self.params["source_sysfs_root"])
            # A simulated lab tree on the source means a lab fleet: the VFs named in domains' <metadata> count as held.
            lab = _devices.is_lab_tree(sysfs)
            source = _devices.scan(sysfs)
        except (SysfsError, _devices.DeviceError) as exc:
            self.fail("reading the KAE devices of %s under %s for the remap of %s failed: %s"
                      % (self.src_host, self.params["source_sysfs_root"], self.name, exc))
        _devices.with_owners(source, *_devices.connection_owners(self.src_conn, self.params["source_uri"], lab))
        destination = _devices.with_owners([dict(device) for device in self.params["destination_devices"]],
                                           *_devices.connection_owners(self.dst_conn, self.params["destination_uri"], lab))
        flags = _libvirt.libvirt.VIR_DOMAIN_XML_MIGRATABLE
        live = libvirt_call("reading the XML of %s" % self.name, self.src_host, src_dom.XMLDesc, flags)
        persistent = None
        if libvirt_call("reading whether %s is persistent" % self.name, self.src_host, src_dom.isPersistent):
            persistent = libvirt_call("reading the definition of %s" % self.name, self.src_host, src_dom.XMLDesc,
                                      flags | _libvirt.libvirt.VIR_DOMAIN_XML_INACTIVE)
        self.result["source_devices"] = source
        try:
            self.result["remap"] = migration_remap(live, persistent, source, destination, destination=self.dst_host,
                                                   allowed=self.params["destination_vfs"], lab=lab)
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
        watch = self.new_watch()
        started_at = time.time()
        start = time.monotonic()
        stop = None
        worker.start()
        while worker.is_alive():
            t_s = time.monotonic() - start
            if watch.sample_due(t_s):
                self.observe(src_dom, watch, t_s)
            limit = watch.limit(t_s)
            if limit is not None and not self.suspend_for(limit, src_dom, t_s):
                stop = self.abort(src_dom, worker, limit, watch, t_s)
                break
            worker.join(POLL_INTERVAL_S)
        duration_s = time.time() - started_at
        self.result.update(started_at=round(started_at, 6), duration_s=round(duration_s, 3), **watch.summary())
        # Where the domain is now, asked again whatever happened: nothing below trusts an earlier answer.
        self.placement()
        if stop is not None and (not stop["ended"] or worker.error is not None):
            self.fail_timeout(stop)
        if worker.error is not None:
            self.fail_migration(worker.error)
        if stop is not None:
            self.module.warn("the migration of %s finished as it was being aborted: it %s" % (self.name, stop["reason"]))
        if self.result["suspended"]:
            self.resume_on_destination()
        if self.outcome() != _migration.MIGRATED:
            self.fail("libvirt reported the migration of %s from %s to %s as done, but %s is not running on %s alone (%s): "
                      "check both hosts" % (self.name, self.src_host, self.dst_host, self.name, self.dst_host, self.where()))
        self.result["job"] = self.completed_job(src_dom)
        if self.params["trace_offset"] is not None:
            self.source_events()
        self.module.exit_json(msg="migrated %s from %s to %s in %.3f s" % (self.name, self.src_host, self.dst_host, duration_s),
                              **self.result)

    def new_watch(self):
        """The convergence watch for this migration, from the options and the guest's memory."""
        params = self.params
        completion_s = _convergence.completion_limit_s(self.result["guest"]["memory_mib"], params["completion_timeout_s_per_gib"])
        self.result.update(limit=None, suspended=None)
        return _convergence.Watch(params["max_downtime_ms"], params["progress_interval_s"], params["timeout_s"], completion_s,
                                  params["progress_timeout_s"], params["downtime_schedule"])

    def source_events(self):
        """Read the source's trace events of the migration into the result; a failed read is said, not fatal: the guest moved."""
        try:
            self.result["source_events"] = read_source_events(self.name, self.params)
        except _logread.LogReadError as exc:
            self.result["source_events_error"] = str(exc)
            self.module.warn("the migration went well, but the source's QEMU log could not be read: %s" % exc)

    def observe(self, src_dom, watch, t_s):
        """Read the job's statistics into WATCH, and apply the maximum downtime its schedule raises to."""
        try:
            stats = src_dom.jobStats()
        except _libvirt.libvirt.libvirtError:
            # No figures this time; a job that stays unreadable counts as making no progress.
            stats = None
        raised_ms = watch.observe(t_s, stats)
        if raised_ms is None:
            return
        try:
            src_dom.migrateSetMaxDowntime(raised_ms, 0)
        except _libvirt.libvirt.libvirtError as exc:
            self.module.warn("raising the maximum downtime of %s to %d ms at %.1f s failed: %s"
                             % (self.name, raised_ms, t_s, _libvirt.error_text(exc)))

    def suspend_for(self, limit, src_dom, t_s):
        """With at_limit=suspend, pause the guest once a progress or completion limit fired, so the migration completes.

        Returns True while the migration may go on (the guest is paused), False when it must be aborted: at_limit=abort,
        the absolute timeout_s, or a pause libvirt refused.
        """
        if self.params["at_limit"] != "suspend" or limit[0] == "timeout_s":
            return False
        if self.result["suspended"]:
            return True
        try:
            src_dom.suspend()
        except _libvirt.libvirt.libvirtError as exc:
            self.module.warn("pausing %s on %s after %s failed (%s): the migration is aborted instead"
                             % (self.name, self.src_host, limit[0], _libvirt.error_text(exc)))
            return False
        self.result["suspended"] = {"at_s": round(t_s, 3), "limit": limit[0], "resumed_by": None}
        self.module.warn("%s was paused on %s after %.1f s (%s fired) so that the migration completes"
                         % (self.name, self.src_host, t_s, limit[0]))
        return True

    def resume_on_destination(self):
        """After a migration completed with the guest paused, make sure it runs on the destination."""
        placement = self.result["placement"]
        if placement.get(self.dst_host) != "paused":
            self.result["suspended"]["resumed_by"] = "libvirt"
            return
        dst_dom = _libvirt.lookup_domain(self.dst_conn, self.name)
        libvirt_call("resuming %s" % self.name, self.dst_host, dst_dom.resume)
        self.result["suspended"]["resumed_by"] = "module"
        self.placement()

    def abort(self, src_dom, worker, limit, watch, t_s):
        """Ask libvirt to abort the job after LIMIT fired and wait up to ABORT_GRACE_S for it to end.

        Returns {"error": abortJob's error or None, "ended": whether the job ended, "grace_s", "reason"}.
        """
        if limit[0] == "timeout_s":
            try:
                progress = _migration.progress_text(src_dom.jobStats())
            except _libvirt.libvirt.libvirtError:
                progress = ""
            reason = _migration.deadline_reason(self.params["timeout_s"], progress)
        else:
            reason = _convergence.limit_reason(limit, watch.last, watch.schedule.current_ms)
        self.result["limit"] = {"name": limit[0], "value_s": limit[1], "at_s": round(t_s, 3)}
        error = None
        try:
            src_dom.abortJob()
        except _libvirt.libvirt.libvirtError as exc:
            error = _libvirt.error_text(exc)
        worker.join(ABORT_GRACE_S)
        return {"error": error, "ended": not worker.is_alive(), "grace_s": ABORT_GRACE_S, "reason": reason}

    def fail_timeout(self, abort):
        """Fail after a limit fired, saying which, what the abort did and where the domain runs."""
        took = abort["ended"] and abort["error"] is None
        self.result["aborted"] = took
        if abort["ended"]:
            self.outcome(aborted=took)
        else:
            # The job may still move the domain: nothing about its place is settled.
            self.result["outcome"] = _migration.UNKNOWN
        self.fail(_migration.timeout_message(self.name, self.src_host, self.dst_host, abort["reason"],
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
                           required_by={"trace_inode": "trace_offset", "destination_vfs": "destination_devices"})
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
