#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: qemu_trace_events
short_description: Read the QEMU trace events a domain's log gained since a byte offset
version_added: 0.1.0
author: openEuler KAE collection contributors (@openeuler)
description:
  - Reads a domain's QEMU log on a hypervisor host (C(/var/log/libvirt/qemu/DOMAIN.log)) from a byte offset to its end
    and returns the trace events found there (lines C(TID@SECONDS.MICROSECONDS:event_name args)), so that the
    controller never fetches a whole log. Libvirt's own lines, blank lines and anything else are skipped.
  - The read starts with a seek to O(offset), so its cost grows with the bytes after O(offset), not with the size of the log.
  - Record RV(next_offset) and RV(inode) before a migration (O(mark=true), the same call on the source and the
    destination) and pass them back after it to get just that migration's events.
    A log rotated or truncated since then (a different O(inode), a size below O(offset), or no line boundary at
    O(offset)) is read from its start, and RV(rotated) says so.
  - A last line that QEMU has not finished writing (no newline yet) is not consumed; RV(next_offset) points at its start.
  - Only a regular file is read; a FIFO, a device or a directory is refused without waiting on it.
  - The cost is linear in the bytes read. Lines longer than 64 KiB (no QEMU trace line is) are skipped without being
    kept in memory.
  - Feed the results of the source and destination hosts to the P(openeuler.kae.migration_downtime#filter) filter.
extends_documentation_fragment:
  - openeuler.kae.attributes
  - openeuler.kae.attributes.INFO_MODULE
options:
  log_path:
    description:
      - The QEMU log to read.
      - Exactly one of O(log_path) and O(domain) is required.
    type: path
  domain:
    description:
      - Name of the libvirt domain whose log C(/var/log/libvirt/qemu/DOMAIN.log) is read. A name that cannot be a
        file name there (a C(/), a leading C(.), a control character) is refused.
      - Exactly one of O(log_path) and O(domain) is required.
    type: str
  offset:
    description:
      - Byte offset to start reading from; V(0) or a RV(next_offset) returned by an earlier call.
    type: int
    default: 0
  inode:
    description:
      - The RV(inode) returned together with O(offset). When the file now has another inode it was rotated, and it is
        read from its start.
    type: int
  profile:
    description:
      - Keep the events of this downtime profile (see P(openeuler.kae.migration_downtime#filter)); V(auto) keeps those
        of V(openeuler) and V(upstream). Ignored when O(events) is given.
    type: str
    default: auto
    choices: [auto, openeuler, upstream, downtime_checkpoint]
  events:
    description:
      - Names of the events to keep, with shell-style wildcards as in QEMU's C(--trace) (for example V(all_vcpus*));
        V(*) keeps every event.
    type: list
    elements: str
  allow_missing:
    description:
      - When the log does not exist, return no events, RV(next_offset=0) and RV(exists=false) instead of failing.
      - Use it to record positions before a migration, since the destination host has no log until the domain first runs there.
    type: bool
    default: false
  mark:
    description:
      - Read no event; return only where the log ends now (RV(next_offset), RV(size), RV(inode)), to pass back as
        O(offset) and O(inode) after a migration. O(offset), O(inode), O(events), O(profile) and O(max_bytes) are ignored.
      - A missing log is a mark at V(0) (RV(exists=false)), since a host where the domain never ran has no log yet.
      - RV(next_offset) is the start of the last line when QEMU has not finished writing it, so the later read
        starts on a line boundary.
    type: bool
    default: false
  max_bytes:
    description:
      - Read at most this many bytes after O(offset); RV(more) then says whether the log goes on, and the next call
        continues from RV(next_offset). No limit when unset.
    type: int
attributes:
  platform:
    platforms: posix
    description: Runs on the hypervisor host that holds the log.
    support: full
notes:
  - The module only reads the log, so it runs the same in check mode.
seealso:
  - plugin: openeuler.kae.migration_downtime
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Remember where each host's log ends before migrating (the destination may have none yet)
  openeuler.kae.qemu_trace_events:
    domain: kae-guest
    mark: true
  register: trace_before

- name: After the migration, read only what the logs gained
  openeuler.kae.qemu_trace_events:
    domain: kae-guest
    offset: "{{ trace_before.next_offset }}"
    inode: "{{ trace_before.inode | default(omit, true) }}"
  register: trace_after

- name: Every event of the openEuler QEMU's pause/resume pair in a log, from its start
  openeuler.kae.qemu_trace_events:
    log_path: /var/log/libvirt/qemu/vm1.log
    events:
      - all_vcpus*
"""

RETURN = r"""
events:
  description: The trace events kept, in log order.
  returned: success
  type: list
  elements: dict
  contains:
    ts:
      description: Event time, epoch seconds with microseconds (the host's wall clock).
      type: float
      sample: 1747835912.854818
    tid:
      description: QEMU thread id.
      type: int
      sample: 16465
    name:
      description: Event name.
      type: str
      sample: all_vcpus_paused
    args:
      description: The event's arguments as QEMU printed them (empty when it has none).
      type: str
      sample: ""
next_offset:
  description: Byte offset just after the last complete line read; pass it as O(offset) next time.
  returned: success
  type: int
  sample: 1048576
size:
  description: Size of the log, in bytes, when it was opened (V(0) when it does not exist).
  returned: success
  type: int
  sample: 1049000
inode:
  description: Inode of the log; pass it as O(inode) next time to detect rotation. V(null) when the log does not exist.
  returned: success
  type: int
  sample: 393231
rotated:
  description: True when the log was read from its start because it was rotated or truncated since O(offset).
  returned: success
  type: bool
  sample: false
more:
  description: True when O(max_bytes) stopped the read before the end of the log.
  returned: success
  type: bool
  sample: false
exists:
  description: Whether the log exists; V(false) only with O(allow_missing=true) or O(mark=true).
  returned: success
  type: bool
  sample: true
log_path:
  description: The log that was read (O(log_path), or the one derived from O(domain)).
  returned: success
  type: str
  sample: /var/log/libvirt/qemu/kae-guest.log
"""

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openeuler.kae.plugins.module_utils import _args, _validate
from ansible_collections.openeuler.kae.plugins.module_utils._logread import LogReadError, domain_log_path, log_mark, read_events
from ansible_collections.openeuler.kae.plugins.module_utils._trace import PROFILE_CHOICES, profile_event_names

ARGUMENT_SPEC = _args.merge(_args.log_path_option(), _args.domain_option(required=False), dict(
    offset=dict(type="int", default=0),
    inode=dict(type="int"),
    profile=dict(type="str", default="auto", choices=list(PROFILE_CHOICES)),
    events=dict(type="list", elements="str"),
    max_bytes=dict(type="int"),
    allow_missing=dict(type="bool", default=False),
    mark=dict(type="bool", default=False),
))


def log_path(params):
    """The log named by O(log_path), or the one libvirt writes for O(domain)."""
    _args.check_shared(params)
    if params["log_path"] is not None:
        return params["log_path"]
    return domain_log_path(params["domain"])


def check_numbers(params):
    """Refuse booleans and negative numbers where offsets, inodes and sizes go."""
    _validate.number(params["offset"], "offset", integer=True)
    if params["inode"] is not None:
        _validate.number(params["inode"], "inode", minimum=0, integer=True)
    if params["max_bytes"] is not None:
        _validate.number(params["max_bytes"], "max_bytes", integer=True)


def run(params):
    """The module's result for PARAMS, or LogReadError / InputError."""
    path = log_path(params)
    if params["mark"]:
        return dict(log_mark(path), log_path=path)
    check_numbers(params)
    names = params["events"] if params["events"] is not None else profile_event_names(params["profile"])
    result = read_events(path, offset=params["offset"], inode=params["inode"], names=names, max_bytes=params["max_bytes"],
                         allow_missing=params["allow_missing"])
    result["log_path"] = path
    return result


def main():
    spec, problem = _validate.screen_number_options(basic._load_params(), ARGUMENT_SPEC)
    module = AnsibleModule(
        argument_spec=spec,
        mutually_exclusive=[("log_path", "domain")],
        required_one_of=[("log_path", "domain")],
        supports_check_mode=True,
    )
    if problem:
        module.fail_json(msg=problem)
    try:
        result = run(module.params)
    except (LogReadError, _validate.InputError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
