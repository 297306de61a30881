#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: network_probe
short_description: Probe a guest's address with ICMP echo during a migration and measure how long it went unanswered
version_added: 0.1.0
description:
  - Runs C(fping) against one IP address, one probe every O(interval_ms), for at most O(duration_s), and computes from
    its output the network-observed downtime (the longest wait between two answers, as the probe host saw it), the
    probes sent and lost, and the sender's own jitter (its send spacing against O(interval_ms)).
  - Meant to run as an asynchronous task (C(async), C(poll=0)) on the probe host, started just before a migration
    and collected with C(ansible.builtin.async_status) after it; creating O(stop_path) ends the probes early.
  - Every time comes from the probe host's clock, so no clock offset between hosts enters the figure.
  - C(fping) keeps its schedule while probes go unanswered; iputils C(ping) waits 10 ms between probes as long as one
    is unanswered, which blurs the end of a short outage (see docs/downtime.md).
  - The command is run as an argument list, never through a shell.
author:
  - openEuler KAE collection contributors (@openeuler)
requirements:
  - fping (Debian and openEuler package C(fping)) on the probe host; an interval under 10 ms needs root
  - chrt (util-linux) for O(priority=realtime), nice (coreutils) for O(priority=nice)
extends_documentation_fragment:
  - openeuler.kae.attributes
  - openeuler.kae.attributes.INFO_MODULE
options:
  address:
    description: The IPv4 or IPv6 address to probe (an address, not a name, so that no name lookup sits in the series).
    type: str
    required: true
  interval_ms:
    description: Time between two probes in milliseconds, from 1 to 1000.
    type: float
    default: 1
  duration_s:
    description:
      - The longest the probes run, in seconds (more than 0, at most 3600); C(fping) is given the matching count and
        stops by itself. The module kills it if it is still running 10 s after that.
    type: float
    default: 60
  timeout_ms:
    description: How long a probe waits for its answer before it counts as lost, in milliseconds, from 1 to 10000.
    type: float
    default: 1000
  stop_path:
    description:
      - A path on the probe host whose appearance ends the probes early (the module then interrupts C(fping), which
        still prints its statistics). The module removes it when it starts and when it ends.
      - Empty runs until O(duration_s).
    type: path
    default: ""
  linger_ms:
    description:
      - How long the probes go on after O(stop_path) appears, in milliseconds (0 to 60000), so that the answers after
        the last gap are in the series.
    type: float
    default: 500
  priority:
    description:
      - How the probe sender is kept from being starved by the migration on a busy host. V(realtime) runs C(fping)
        under C(chrt --fifo 1) (needs root), V(nice) under C(nice -n -10), V(normal) as it is.
    type: str
    choices: [normal, nice, realtime]
    default: realtime
notes:
  - The module fails when fewer than two probes were answered (the address does not answer ICMP echo from the
    probe host) and when the last probes were still unanswered when it stopped; the message says which.
seealso:
  - module: openeuler.kae.live_migration
"""

EXAMPLES = r"""
- name: Start probing the guest just before the migration
  openeuler.kae.network_probe:
    address: 192.0.2.10
    interval_ms: 1
    duration_s: 600
    stop_path: /run/kae-probe-kae-guest.stop
    linger_ms: 500
  delegate_to: localhost
  async: 630
  poll: 0
  register: probe_job

# ... the migration ...

- name: Stop the probes
  ansible.builtin.file:
    path: /run/kae-probe-kae-guest.stop
    state: touch
    mode: "0600"
  delegate_to: localhost

- name: Collect what the guest's clients saw
  ansible.builtin.async_status:
    jid: "{{ probe_job.ansible_job_id }}"
  delegate_to: localhost
  register: probe
  until: probe.finished
  retries: 100
  delay: 0.2
"""

RETURN = r"""
network_downtime_ms:
  description: The longest time between two answers, in the order they arrived, in milliseconds (about O(interval_ms) with no loss).
  returned: success
  type: float
  sample: 141.48
probes_sent:
  description: Probes sent, from fping's statistics.
  returned: success
  type: int
  sample: 500
probes_lost:
  description: Probes without an answer.
  returned: success
  type: int
  sample: 116
probes_duplicated:
  description: Extra answers to a probe already answered (not counted as answers).
  returned: success
  type: int
  sample: 0
probe_interval_ms:
  description: The configured interval.
  returned: success
  type: float
  sample: 1.0
gap_started_at:
  description: Arrival of the answer before the longest gap, epoch seconds on the probe host's clock.
  returned: success
  type: float
  sample: 1796264260.89289
gap_ended_at:
  description: Arrival of the answer after the longest gap.
  returned: success
  type: float
  sample: 1796264261.03437
lost_in_gap:
  description: Probes sent inside the longest gap that were never answered.
  returned: success
  type: int
  sample: 116
sender_limited:
  description: True when no probe was lost inside the longest gap, so that the gap is a stall of the sender (or the path), not an outage.
  returned: success
  type: bool
  sample: false
probe_jitter_ms:
  description: The sender's largest deviation from O(interval_ms) between two consecutive answered probes, in milliseconds.
  returned: success
  type: float
  sample: 4.252
send_spacing_mean_ms:
  description: The sender's mean spacing between two consecutive answered probes.
  returned: success
  type: float
  sample: 1.161
send_spacing_max_ms:
  description: The sender's largest spacing between two consecutive answered probes.
  returned: success
  type: float
  sample: 5.252
spacings:
  description: How many pairs of consecutive answered probes the jitter figures come from.
  returned: success
  type: int
  sample: 382
stopped_by:
  description: V(count) (the probes ran for O(duration_s)), V(stop_path) or V(deadline) (killed 10 s after O(duration_s)).
  returned: always
  type: str
  sample: stop_path
cmd:
  description: The command that ran, as an argument list.
  returned: always
  type: list
  elements: str
  sample: [chrt, --fifo, "1", fping, -D, -c, "600000", -p, "1", -i, "1", -t, "1000", 192.0.2.10]
"""

import ipaddress
import math
import os
import signal
import threading
import time

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openeuler.kae.plugins.module_utils import _probes, _validate

# How often the stop path and fping are looked at: small beside the seconds a migration takes.
POLL_S = 0.02
# Past the probes' own end, how long fping may take to finish before it is killed.
KILL_GRACE_S = 10.0
PRIORITY_PREFIX = {"normal": [], "nice": ["nice", "-n", "-10"], "realtime": ["chrt", "--fifo", "1"]}

ARGUMENT_SPEC = dict(
    address=dict(type="str", required=True),
    interval_ms=dict(type="float", default=1.0),
    duration_s=dict(type="float", default=60.0),
    timeout_ms=dict(type="float", default=1000.0),
    stop_path=dict(type="path", default=""),
    linger_ms=dict(type="float", default=500.0),
    priority=dict(type="str", default="realtime", choices=["normal", "nice", "realtime"]),
)


def check_params(params):
    """The address in canonical form; InputError naming the option for anything out of range."""
    address = _validate.text(params["address"], "address").strip()
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        raise _validate.InputError("address must be an IPv4 or IPv6 address (not a host name), got %r" % (params["address"],)) from None
    _validate.number(params["interval_ms"], "interval_ms", minimum=1, maximum=1000)
    _validate.positive(params["duration_s"], "duration_s", maximum=3600)
    _validate.number(params["timeout_ms"], "timeout_ms", minimum=1, maximum=10000)
    _validate.number(params["linger_ms"], "linger_ms", minimum=0, maximum=60000)
    if params["stop_path"] and not os.path.isabs(params["stop_path"]):
        raise _validate.InputError("stop_path must be an absolute path, got %r" % (params["stop_path"],))
    return address


def _ms_arg(value):
    """A millisecond figure as fping takes it: no trailing '.0' for whole numbers."""
    return ("%d" % value) if float(value).is_integer() else ("%g" % value)


def build_argv(params, address, fping_path="fping"):
    """The probe command as an argument list."""
    count = max(1, int(math.ceil(params["duration_s"] * 1000.0 / params["interval_ms"])))
    interval = _ms_arg(params["interval_ms"])
    return PRIORITY_PREFIX[params["priority"]] + [
        fping_path, "-D", "-c", str(count), "-p", interval, "-i", interval, "-t", _ms_arg(params["timeout_ms"]), address]


def _remove(path):
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def watch(proc, stop_path, deadline_s, outcome, linger_s=0.0):
    """Interrupt PROC (SIGINT) LINGER_S after STOP_PATH appears, kill it past DEADLINE_S; set outcome["stopped_by"]."""
    end = time.monotonic() + deadline_s
    stop_at = None
    while proc.poll() is None:
        if stop_at is None and stop_path and os.path.exists(stop_path):
            stop_at = time.monotonic() + linger_s
        if stop_at is not None and time.monotonic() >= stop_at:
            outcome["stopped_by"] = "stop_path"
            proc.send_signal(signal.SIGINT)
            return
        if time.monotonic() > end:
            outcome["stopped_by"] = "deadline"
            proc.kill()
            return
        time.sleep(POLL_S)


def run_probes(module, argv, stop_path, deadline_s, linger_s=0.0):
    """Run ARGV until it ends, STOP_PATH appears or DEADLINE_S passes; (output, how it stopped, exit status)."""
    outcome = {"stopped_by": "count"}

    def start_watching(proc):
        # run_command hands over the process before it reads its output: watch it from a thread meanwhile.
        threading.Thread(target=watch, args=(proc, stop_path, deadline_s, outcome, linger_s), daemon=True).start()

    rc, out, err = module.run_command(argv, before_communicate_callback=start_watching)
    # fping prints answers and timeouts on stdout and its closing statistics on stderr.
    return out + err, outcome["stopped_by"], rc


def main():
    spec, problem = _validate.screen_number_options(basic._load_params(), ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if problem:
        module.fail_json(msg=problem)
    params = module.params
    try:
        address = check_params(params)
    except _validate.InputError as exc:
        module.fail_json(msg=str(exc))
    required = ["fping"] + PRIORITY_PREFIX[params["priority"]][:1]
    paths = [module.get_bin_path(name, required=True) for name in required]
    argv = build_argv(params, address, fping_path=paths[0])
    if module.check_mode:
        module.exit_json(changed=False, stopped_by="check_mode", cmd=argv, msg="check mode: no probe sent")
    _remove(params["stop_path"])
    try:
        deadline_s = params["duration_s"] + params["timeout_ms"] / 1000.0 + KILL_GRACE_S
        output, stopped_by, rc = run_probes(module, argv, params["stop_path"], deadline_s, linger_s=params["linger_ms"] / 1000.0)
    finally:
        _remove(params["stop_path"])
    try:
        result = _probes.analyse_fping(output, params["interval_ms"])
    except _probes.ProbeError as exc:
        module.fail_json(msg="probing %s: %s" % (address, exc), stopped_by=stopped_by, cmd=argv, rc=rc, output=output[-2000:])
    module.exit_json(changed=False, stopped_by=stopped_by, cmd=argv, **result)


if __name__ == "__main__":
    main()
