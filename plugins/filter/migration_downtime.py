# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: migration_downtime
short_description: Guest downtime of a live migration, from the QEMU trace events of both hosts
version_added: 0.1.0
author: openEuler KAE collection contributors (@openeuler)
description:
  - Finds the source host's event marking the guest's vCPUs stopping for migration and the destination host's event
    marking them running again, and returns the time between them in milliseconds.
  - Each log is what the domain's QEMU wrote to C(/var/log/libvirt/qemu/DOMAIN.log) on that host, given as its raw text,
    a list of its lines, or the RV(openeuler.kae.qemu_trace_events#module:events) list (or the whole registered result) of
    M(openeuler.kae.qemu_trace_events).
  - A log holds boots, earlier migrations and later ones. A source pause is paired with the first destination resume at or
    after it; when several source pauses precede the same resume, only the latest is the migration (the others were
    suspends or failed attempts).
  - By default the answer is the migration that starts with the latest source pause; when no destination resume follows that pause
    the filter fails instead of answering with an older migration.
  - Times are kept to the microsecond; milliseconds are rounded to 3 decimals.
positional: dst_log
options:
  _input:
    description: The source host's QEMU log (text, list of lines, or list of events).
    type: raw
    required: true
  dst_log:
    description: The destination host's QEMU log (text, list of lines, or list of events).
    type: raw
    required: true
  profile:
    description:
      - Which QEMU events bracket the downtime.
      - V(openeuler) pairs source C(all_vcpus_paused) with destination C(all_vcpus_prepared) (openEuler's QEMU, with
        C(--trace all_vcpus*) in the domain XML).
      - V(upstream) pairs the source's C(vm_state_notify) saying C(running 0) for C(finish-migrate) with the destination's
        C(vm_state_notify) saying C(running 1) for C(running) (any QEMU, with C(--trace vm_state_notify)).
      - V(downtime_checkpoint) pairs QEMU 8.2's C(vmstate_downtime_checkpoint src-downtime-start) with
        C(vmstate_downtime_checkpoint dst-precopy-bh-vm-started). Under libvirt the destination starts paused and libvirt
        resumes it later, so this measures QEMU's share only; V(upstream) ends when the guest really runs again.
      - V(auto) uses V(openeuler) when the source log holds C(all_vcpus_paused), else V(upstream).
    type: str
    default: auto
    choices: [auto, openeuler, upstream, downtime_checkpoint]
  clock_offset_ms:
    description:
      - Destination clock minus source clock, in milliseconds, for example each host's offset against one NTP server
        (source offset minus destination offset). It is subtracted from the downtime.
    type: float
    default: 0
  all:
    description: Return every migration found, oldest first, instead of the latest one.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Read the trace events the migration added on each host
  openeuler.kae.qemu_trace_events:
    domain: kae-guest
    offset: "{{ offsets[inventory_hostname] }}"
  register: migration_trace

- name: Compute the guest's downtime
  ansible.builtin.set_fact:
    migration_result: >-
      {{ hostvars[migration_source].migration_trace
         | openeuler.kae.migration_downtime(hostvars[migration_destination].migration_trace, clock_offset_ms=clock_offset) }}

- name: The published openEuler sample gives 127.518 ms
  ansible.builtin.assert:
    that:
      - >-
        ('16465@1747835912.854818:all_vcpus_paused'
         | openeuler.kae.migration_downtime('19688@1747835912.982336:all_vcpus_prepared')).downtime_ms == 127.518

- name: Every migration in two whole logs, oldest first
  ansible.builtin.debug:
    msg: "{{ source_log_text | openeuler.kae.migration_downtime(destination_log_text, all=true) | map(attribute='downtime_ms') }}"
"""

RETURN = r"""
_value:
  description:
    - The latest migration, or with O(all=true) a list of them, oldest first. Each is a dictionary with these keys.
    - C(downtime_ms) (float) is the guest's downtime in milliseconds, corrected by O(clock_offset_ms).
    - C(raw_downtime_ms) (float) is destination time minus source time as logged, without correction.
    - C(paused_at) (float) is the source event's time, epoch seconds.
    - C(resumed_at) (float) is the destination event's time on the source's clock (corrected by O(clock_offset_ms)),
      epoch seconds.
    - C(profile) (str) is the profile used (what V(auto) resolved to).
    - C(src_event) and C(dst_event) (dict) are the two events, each with C(ts), C(tid), C(name), C(args).
    - C(clock_offset_ms) (float) is the correction applied.
  type: raw
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.openeuler.kae.plugins.module_utils._trace import TraceError, latest_migration, migrations


def migration_downtime(src_log, dst_log, profile="auto", clock_offset_ms=0.0, all=False):  # pylint: disable=redefined-builtin
    """Downtime of the latest (or every) migration between the source and destination QEMU logs."""
    try:
        list_all = boolean(all, strict=True)
    except TypeError:
        raise AnsibleFilterError("openeuler.kae.migration_downtime: expected all=true or all=false, got %r" % (all,)) from None
    try:
        if list_all:
            return migrations(src_log, dst_log, profile=profile, clock_offset_ms=clock_offset_ms)
        return latest_migration(src_log, dst_log, profile=profile, clock_offset_ms=clock_offset_ms)
    except TraceError as exc:
        raise AnsibleFilterError("openeuler.kae.migration_downtime: %s" % exc) from None


class FilterModule:
    """openeuler.kae.migration_downtime"""

    def filters(self):
        return {"migration_downtime": migration_downtime}
