#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_report
short_description: Write the live-migration downtime report (JSON, Markdown, JUnit, SVG chart)
version_added: 0.1.0
description:
  - Turns the measured live-migration rounds into a report an operator can hand in, written on the
    host the module runs on (normally the controller, delegated to C(localhost)).
  - Writes C(report.json), C(report.md), C(junit.xml) and C(downtime.svg) (and C(progress.svg) when a round has progress
    samples, C(sweep.svg) when the rounds ended at more than one maximum downtime) into O(report_dir)/O(run_id)/,
    each file atomically, and points the symlink O(report_dir)/C(latest) at that directory.
  - The summary (count, min, median, max against the threshold) is computed over the rounds that measured
    a downtime; the report passes only when every round passed and no downtime exceeded O(threshold_ms).
  - Running again with the same O(run_id) and the same rounds changes nothing (the original C(generated_at) is kept).
  - The module never fails because rounds failed; it reports RV(summary.passed) and the caller decides
    (the role C(openeuler.kae.report) fails the play after writing the report).
author:
  - openEuler KAE collection contributors (@openeuler)
extends_documentation_fragment:
  - openeuler.kae.attributes
attributes:
  check_mode:
    support: full
    details:
      - Renders the report and says which files would change; writes nothing.
  diff_mode:
    support: full
    details:
      - One diff per report file that changes, and one for the C(latest) symlink.
options:
  rounds:
    description:
      - The measured rounds, oldest first, each a migration record as built by the
        P(openeuler.kae.migration_record#filter) filter (the C(openeuler.kae.migration) role builds them).
      - A round must have exactly the record's keys; one with a missing or unknown key is refused, naming the keys.
      - A round with C(status=passed) whose downtime exceeds O(threshold_ms) is reported as failed.
      - A round with C(clock_corrected=false) (no NTP server was given) is reported, and the summary line says that its
        downtime is not corrected for the hosts' clock offset.
      - Must not be empty.
    type: list
    elements: dict
    required: true
  environment:
    description:
      - Where the rounds ran, shown in the report. Keys C(hosts) (list), C(qemu_version), C(libvirt_version),
        C(guest) (C(name), C(vcpus), C(memory_mib)), C(devices) (list of M(openeuler.kae.device_info) device
        dicts or strings) and C(lab) (true when the devices are simulated). Every key is optional.
    type: dict
    default: {}
  threshold_ms:
    description:
      - The downtime target in milliseconds; a round above it fails.
    type: float
    default: 200
  report_dir:
    description:
      - The directory holding one sub-directory per run and the C(latest) symlink. Created when missing.
      - Give an absolute path; a relative one is taken from the directory the module runs in.
    type: path
    required: true
  run_id:
    description:
      - Names this run's directory under O(report_dir), for example a UTC timestamp V(20261125T182300Z).
      - Letters, digits, dots, underscores, colons, plus and minus signs only, starting with a letter or digit;
        V(latest) is reserved.
    type: str
    required: true
  evacuation:
    description:
      - Makes the report a host evacuation's, where each of O(rounds) is one guest's migration (from the role
        C(openeuler.kae.evacuation)).
      - A mapping with C(host) (the drained host), C(placements) (the plan's placements with their batch, as
        P(openeuler.kae.evacuation_batches#filter) gives them, with C(guest), C(batch) and C(vfs), the destination VFs),
        C(moving) (P(openeuler.kae.evacuation_plan#filter)'s C(moving), each guest's VFs on the source), C(skipped)
        (the plan's unplaced guests, C({guest, reasons}), left on the host) and C(limits) (C(per_source),
        C(per_destination), C(total)).
      - The report then has a row per guest (guest, from, to, VFs before and after, trace and libvirt downtime,
        migration time, status), C(evacuation) in C(report.json), the downtime chart by guest, one JUnit test case per
        guest, and C(timeline.svg), each migration from start to end on one time axis, which shows how many ran at once
        (RV(summary.max_concurrent)). The VFs after are those the migration's remap gave (C(kae_vf_mapping)), else the planned ones.
    type: dict
  latest:
    description:
      - Point O(report_dir)/C(latest) at this run's directory.
      - The module refuses to replace a C(latest) that is not a symlink.
    type: bool
    default: true
notes:
  - The chart is drawn by hand as SVG; no plotting library is needed on the host.
seealso:
  - plugin: openeuler.kae.migration_record
    plugin_type: filter
  - module: openeuler.kae.live_migration
  - module: openeuler.kae.qemu_trace_events
"""

EXAMPLES = r"""
- name: Write the report of the rounds on the controller
  openeuler.kae.migration_report:
    rounds: "{{ migration_rounds }}"
    environment:
      hosts: [hv-a, hv-b]
      qemu_version: 6.2.0
      libvirt_version: 6.2.0
      guest: {name: kae-guest, vcpus: 8, memory_mib: 16384}
      devices: "{{ kae_devices }}"
    threshold_ms: 200
    report_dir: "{{ playbook_dir }}/../reports"
    run_id: "{{ now(utc=true, fmt='%Y%m%dT%H%M%SZ') }}"
  delegate_to: localhost
  run_once: true
  register: report

- name: Show the table
  ansible.builtin.debug:
    msg: "{{ report.table.splitlines() + [report.summary_line] }}"
"""

RETURN = r"""
run_dir:
  description: The directory of this run's report.
  returned: always
  type: str
  sample: /srv/kae/reports/20261125T182300Z
files:
  description: The path of each report file.
  returned: always
  type: dict
  contains:
    json:
      description: The report data.
      type: str
      sample: /srv/kae/reports/20261125T182300Z/report.json
    markdown:
      description: The report for people.
      type: str
      sample: /srv/kae/reports/20261125T182300Z/report.md
    junit:
      description: One test case per round, for CI systems.
      type: str
      sample: /srv/kae/reports/20261125T182300Z/junit.xml
    svg:
      description: The downtime chart.
      type: str
      sample: /srv/kae/reports/20261125T182300Z/downtime.svg
    timeline:
      description: The chart of the migrations over time; only with O(evacuation).
      type: str
      returned: when O(evacuation) is given
      sample: /srv/kae/reports/20261125T182300Z/timeline.svg
    progress:
      description:
        - The chart of the memory left to send over time, one small chart per migration, with the raises of the maximum
          downtime; only when a round has progress samples (RV(openeuler.kae.live_migration#module:progress)).
      type: str
      returned: when a round has progress samples
      sample: /srv/kae/reports/20261125T182300Z/progress.svg
    sweep:
      description:
        - The tuning curve, median measured downtime and median migration time against the maximum downtime the
          migrations ended at (for example a sweep of the migration role's C(migration_sweep_max_downtime_ms)); only
          when the rounds ended at more than one maximum downtime.
      type: str
      returned: when the rounds ended at more than one maximum downtime
      sample: /srv/kae/reports/20261125T182300Z/sweep.svg
latest:
  description: The C(latest) symlink, or null when O(latest=false).
  returned: always
  type: str
  sample: /srv/kae/reports/latest
changed_files:
  description: The report files (and C(latest)) that were written, or would be in check mode.
  returned: always
  type: list
  elements: str
  sample: [report.json, report.md, junit.xml, downtime.svg, latest]
summary:
  description: The C(summary) of C(report.json).
  returned: always
  type: dict
  contains:
    count:
      description: Number of rounds.
      type: int
      sample: 3
    measured:
      description: Number of rounds that measured a downtime.
      type: int
      sample: 3
    min_ms:
      description: Smallest measured downtime, null when no round measured one.
      type: float
      sample: 147.0
    median_ms:
      description: Median measured downtime, null when no round measured one.
      type: float
      sample: 152.0
    max_ms:
      description: Largest measured downtime, null when no round measured one.
      type: float
      sample: 158.0
    threshold_ms:
      description: The target.
      type: float
      sample: 200.0
    rounds_passed:
      description: Rounds that passed.
      type: int
      sample: 3
    rounds_failed:
      description: Rounds that failed (over the threshold, or failed by the migration role).
      type: int
      sample: 0
    rounds_errored:
      description: Rounds that errored and measured no downtime.
      type: int
      sample: 0
    passed:
      description: True when every round passed.
      type: bool
      sample: true
    rounds_clock_uncorrected:
      description: Rounds whose downtime is not corrected for the hosts' clock offset (their clocks were not measured).
      type: int
      sample: 0
    max_concurrent:
      description: The most migrations that ran at the same moment; only with O(evacuation).
      type: int
      returned: when O(evacuation) is given
      sample: 2
summary_line:
  description: The verdict in one line; it ends by saying so when a round's clocks were not measured.
  returned: always
  type: str
  sample: "max 158 ms <= 200 ms target: PASSED"
table:
  description: The Markdown performance table of C(report.md) (round, downtime, libvirt downtime, network downtime, direction, result).
  returned: always
  type: str
  sample: "| Round | Downtime (ms) | libvirt downtime (ms) | Network downtime (ms) | Direction | Result |\n|---|---|---|---|---|---|\n\
    | 1 | 158 | 160 | 171.5 | a -> b | passed |\n"
"""

import datetime
import json
import os
import tempfile

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.openeuler.kae.plugins.module_utils import _report
from ansible_collections.openeuler.kae.plugins.module_utils import _validate

FILE_KEYS = {"report.json": "json", "report.md": "markdown", "junit.xml": "junit", "downtime.svg": "svg", "timeline.svg": "timeline",
             "progress.svg": "progress", "sweep.svg": "sweep"}
LATEST = "latest"


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_text(path):
    """A file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def previous_report(run_dir):
    """The report.json already written for this run, or None."""
    text = read_text(os.path.join(run_dir, "report.json"))
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def link_target(path):
    """Where the symlink PATH points, None when absent; ValueError when PATH is not a symlink."""
    if os.path.islink(path):
        return os.readlink(path)
    if os.path.lexists(path):
        raise ValueError("%s exists and is not a symlink; move it away so the module can point it at the newest run" % path)
    return None


def write_file(module, path, text):
    """Write TEXT to PATH atomically: a temporary file beside it, then a rename."""
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=os.path.dirname(path))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    module.atomic_move(tmp, path)


def point_link(path, target):
    """Make PATH a symlink to TARGET atomically (replace by rename)."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    os.symlink(target, tmp)
    os.replace(tmp, path)


def plan(params, now):
    """Render the report and compare it with what is on disk; return (report, texts, changes, diffs)."""
    run_id = _report.check_run_id(params["run_id"])
    run_dir = os.path.join(params["report_dir"], run_id)
    report = _report.build_report(params["rounds"], params["environment"], params["threshold_ms"], run_id, now, params["evacuation"])
    previous = previous_report(run_dir)
    if _report.same_report(previous, report):
        report["generated_at"] = previous["generated_at"]
    texts = _report.render_all(report)
    changes, diffs = [], []
    for name in texts:
        before = read_text(os.path.join(run_dir, name))
        if before != texts[name]:
            changes.append(name)
            diffs.append({"before": before or "", "after": texts[name],
                          "before_header": os.path.join(run_dir, name), "after_header": os.path.join(run_dir, name)})
    if params["latest"]:
        latest = os.path.join(params["report_dir"], LATEST)
        before = link_target(latest)
        if before != run_id:
            changes.append(LATEST)
            diffs.append({"before": "%s -> %s\n" % (latest, before) if before else "", "after": "%s -> %s\n" % (latest, run_id),
                          "before_header": latest, "after_header": latest})
    return report, texts, changes, diffs


def apply(module, params, run_id, texts, changes):
    run_dir = os.path.join(params["report_dir"], run_id)
    os.makedirs(run_dir, exist_ok=True)
    for name in changes:
        if name == LATEST:
            point_link(os.path.join(params["report_dir"], LATEST), run_id)
        else:
            write_file(module, os.path.join(run_dir, name), texts[name])


ARGUMENT_SPEC = dict(
    rounds=dict(type="list", elements="dict", required=True),
    environment=dict(type="dict", default={}),
    threshold_ms=dict(type="float", default=200),
    report_dir=dict(type="path", required=True),
    run_id=dict(type="str", required=True),
    latest=dict(type="bool", default=True),
    evacuation=dict(type="dict"),
)


def main():
    spec, problem = _validate.screen_number_options(basic._load_params(), ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    try:
        if problem:
            raise _validate.InputError(problem)
        _validate.text(module.params["report_dir"], "report_dir")
    except _validate.InputError as exc:
        module.fail_json(msg="cannot write the migration report: %s" % exc)
    params = dict(module.params, report_dir=os.path.abspath(module.params["report_dir"]))
    try:
        report, texts, changes, diffs = plan(params, utc_now())
    except (ValueError, OSError) as exc:  # bad rounds, a latest that is not a symlink, an unreadable report dir
        module.fail_json(msg="cannot write the migration report: %s" % to_native(exc))
    run_id = report["run_id"]
    if changes and not module.check_mode:
        try:
            apply(module, params, run_id, texts, changes)
        except OSError as exc:
            module.fail_json(msg="cannot write the migration report under %s: %s" % (params["report_dir"], to_native(exc)))
    run_dir = os.path.join(params["report_dir"], run_id)
    result = dict(
        changed=bool(changes),
        run_dir=run_dir,
        files=dict((FILE_KEYS[name], os.path.join(run_dir, name)) for name in _report.render_all(report)),
        latest=os.path.join(params["report_dir"], LATEST) if params["latest"] else None,
        changed_files=changes,
        summary=report["summary"],
        summary_line=_report.summary_line(report),
        table=_report.render_table(report),
    )
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
