# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: migration_record
short_description: The record of one measured migration, from what its steps returned
version_added: 0.1.0
description:
  - Builds the record of one migration with the same keys whatever happened, so that a migration that passed,
    one over the threshold and one that failed differ only in C(status), C(error) and the figures that are null.
  - The downtime is QEMU's, from the source's pause event to the destination's resume event (see
    P(openeuler.kae.migration_downtime#filter)), corrected by C(clock_offset_ms) of the input when it is given.
  - M(openeuler.kae.migration_report) accepts exactly these records.
author:
  - openEuler KAE collection contributors (@openeuler)
options:
  _input:
    description:
      - The steps' results, by name. Only C(guest), C(source) and C(destination) are required; a step that did not
        run is left out (or null).
      - C(round) (int) numbers the migration in a series.
      - C(migration) is the result of M(openeuler.kae.live_migration), also when it failed.
      - C(src_events) and C(dst_events) are the source's and destination's results of
        M(openeuler.kae.qemu_trace_events) (or their event lists).
      - C(remap) is the result of M(openeuler.kae.hostdev_remap).
      - C(clock_offset_ms) is the destination clock minus the source clock; leave it out when the clocks were not
        measured (the record then says C(clock_corrected=false)).
      - C(profile) is the trace profile (default V(auto)), C(threshold_ms) the downtime the migration must not exceed.
      - C(error) is the failure of a step (for example C(ansible_failed_result.msg) in a C(rescue)); the record is then
        an error record.
      - C(probe) is the result of M(openeuler.kae.network_probe) (its C(ansible.builtin.async_status) result), also when
        it failed or was skipped; C(probe_from) names the host it ran on. Without a probe the record says why in
        C(probe_error). The probe's figures never change C(status), which judges QEMU's downtime.
    type: dict
    required: true
seealso:
  - plugin: openeuler.kae.migration_downtime
    plugin_type: filter
  - module: openeuler.kae.migration_report
"""

EXAMPLES = r"""
- name: Keep the record of the migration
  ansible.builtin.set_fact:
    migration_record: >-
      {{ {'guest': 'kae-guest', 'source': 'hv1', 'destination': 'hv2', 'migration': migrated,
          'src_events': src_trace, 'dst_events': dst_trace, 'threshold_ms': 200} | openeuler.kae.migration_record }}

- name: The same keys when a step failed
  ansible.builtin.set_fact:
    migration_record: >-
      {{ {'guest': 'kae-guest', 'source': 'hv1', 'destination': 'hv2', 'migration': migrated | default(none),
          'error': ansible_failed_result.msg} | openeuler.kae.migration_record }}
"""

RETURN = r"""
_value:
  description:
    - The record. C(status) is V(passed), V(failed) (over the threshold) or V(error) (the migration or the measurement
      failed; C(error) says why). C(outcome) is what became of the guest (V(migrated), V(aborted), V(failed) or
      V(unknown)).
    - Figures are null when unknown. Times are epoch seconds on the source's clock, durations in milliseconds (C(_ms))
      or seconds (C(_s)).
  type: dict
  contains:
    round:
      description: The migration's number in a series, or null.
      type: int
    guest:
      description: The libvirt domain.
      type: str
    source:
      description: The host it left.
      type: str
    destination:
      description: The host it went to.
      type: str
    status:
      description: V(passed), V(failed) or V(error).
      type: str
    error:
      description: Why it did not pass, or null.
      type: str
    outcome:
      description: V(migrated), V(aborted), V(failed) or V(unknown).
      type: str
    started_at:
      description: When the migration call started.
      type: float
    duration_s:
      description: Wall time of the migration call.
      type: float
    downtime_ms:
      description: QEMU's downtime from the trace events, corrected by the clock offset.
      type: float
    raw_downtime_ms:
      description: Destination event time minus source event time as logged.
      type: float
    paused_at:
      description: Time of the source's pause event.
      type: float
    resumed_at:
      description: Time of the destination's resume event on the source's clock.
      type: float
    profile:
      description: The trace profile used.
      type: str
    clock_offset_ms:
      description: The correction applied, or null without clock measurement.
      type: float
    clock_corrected:
      description: Whether the downtime is corrected by measured clock offsets.
      type: bool
    libvirt_downtime_ms:
      description: libvirt's completed-job downtime.
      type: int
    libvirt_downtime_net_ms:
      description: libvirt's downtime without the control hand-over.
      type: int
    libvirt_total_time_ms:
      description: libvirt's duration of the migration job.
      type: int
    kae_vf_mapping:
      description: Source VF to destination VF for the VFs that moved to other addresses.
      type: dict
    threshold_ms:
      description: The threshold the downtime was judged against, or null.
      type: float
    network_downtime_ms:
      description:
        - The longest wait between two answers to the probes, as the probe host saw it (see
          M(openeuler.kae.network_probe)), or null when the guest was not probed.
      type: float
    probes_sent:
      description: Probes sent during the migration, or null.
      type: int
    probes_lost:
      description: Probes never answered, or null.
      type: int
    probe_interval_ms:
      description: The configured time between two probes, or null.
      type: float
    probe_jitter_ms:
      description: The probe sender's largest deviation from its interval, or null.
      type: float
    probe_from:
      description: The host the probes ran on, or null when none ran.
      type: str
    probe_error:
      description: Why there is no network figure (no probe address, or the probe's failure), or null.
      type: str
    progress:
      description:
        - The progress samples M(openeuler.kae.live_migration) took while the migration ran
          (RV(openeuler.kae.live_migration#module:progress)); empty when none was taken.
      type: list
      elements: dict
    max_downtime_final_ms:
      description: The maximum downtime in force when the migration ended (the step it converged at), or null.
      type: int
    downtime_step:
      description:
        - How many times the downtime schedule had raised the maximum downtime when the migration ended (V(0) it ended
          at the first value); null when no migration ran.
      type: int
    limit:
      description:
        - The limit that made the migration abort or pause the guest, with C(name), C(value_s) and C(at_s) as in
          RV(openeuler.kae.live_migration#module:limit), or null when none fired.
      type: dict
    suspended:
      description:
        - Set when the guest was paused on the source so that the migration completed
          (RV(openeuler.kae.live_migration#module:suspended)), with C(paused_s), how long it stayed paused until the
          migration call ended; null otherwise.
      type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.module_utils._record import RecordError, build_record


def migration_record(steps):
    try:
        return build_record(steps)
    except RecordError as exc:
        raise AnsibleFilterError("openeuler.kae.migration_record: %s" % exc) from None


class FilterModule:
    """openeuler.kae.migration_record"""

    def filters(self):
        return {"migration_record": migration_record}
