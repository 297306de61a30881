# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.openeuler.kae.plugins.modules import network_probe

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "module_utils", "fixtures", "fping-1ms-120ms-outage.txt")


def params(**extra):
    base = {"address": "127.0.0.1", "interval_ms": 1.0, "duration_s": 60.0, "timeout_ms": 1000.0, "stop_path": "",
            "linger_ms": 500.0, "priority": "realtime"}
    base.update(extra)
    return base


def test_argv_is_a_list_with_a_bounded_count():
    argv = network_probe.build_argv(params(duration_s=2.5, interval_ms=0.5 * 2), "127.0.0.1", fping_path="/usr/bin/fping")
    assert argv == ["chrt", "--fifo", "1", "/usr/bin/fping", "-D", "-c", "2500", "-p", "1", "-i", "1", "-t", "1000", "127.0.0.1"]
    assert network_probe.build_argv(params(priority="normal", interval_ms=2.5, duration_s=0.001), "::1")[:8] == [
        "fping", "-D", "-c", "1", "-p", "2.5", "-i", "2.5"]


@pytest.mark.parametrize("extra, message", [
    ({"address": "guest.example"}, "address must be an IPv4 or IPv6 address"),
    ({"address": "10.0.0.1; reboot"}, "address must be an IPv4 or IPv6 address"),
    ({"interval_ms": 0.5}, "interval_ms must be at least 1"),
    ({"duration_s": 0.0}, "duration_s"),
    ({"duration_s": 7200.0}, "duration_s"),
    ({"timeout_ms": 0.0}, "timeout_ms must be at least 1"),
    ({"stop_path": "relative/stop"}, "stop_path must be an absolute path"),
    ({"linger_ms": -1.0}, "linger_ms must be at least 0"),
])
def test_bad_options_are_refused_naming_the_option(fail_module, extra, message):
    assert message in fail_module(network_probe, params(**extra))["msg"]


def test_ipv6_address_is_canonical():
    assert network_probe.check_params(params(address=" FD00:0::2 ")) == "fd00::2"


def test_recorded_output_is_measured(run_module, monkeypatch):
    with open(FIXTURE, encoding="utf-8") as handle:
        recorded = handle.read()
    monkeypatch.setattr(network_probe, "run_probes", lambda module, argv, stop, deadline, linger_s: (recorded, "stop_path", 1))
    monkeypatch.setattr(network_probe.AnsibleModule, "get_bin_path", lambda self, name, required=False: "/usr/bin/" + name)
    result = run_module(network_probe, params(address="10.231.0.2"))
    assert result["changed"] is False and result["stopped_by"] == "stop_path"
    assert (result["network_downtime_ms"], result["probes_sent"], result["probes_lost"]) == (141.48, 500, 116)
    assert result["cmd"][-1] == "10.231.0.2"


def test_no_answer_fails_with_the_reason(fail_module, monkeypatch):
    silent = "[1.0] 10.0.0.9 : [0], timed out (NaN avg, 100% loss)\n10.0.0.9 : xmt/rcv/%loss = 1/0/100%\n"
    monkeypatch.setattr(network_probe, "run_probes", lambda module, argv, stop, deadline, linger_s: (silent, "count", 1))
    monkeypatch.setattr(network_probe.AnsibleModule, "get_bin_path", lambda self, name, required=False: "/usr/bin/" + name)
    result = fail_module(network_probe, params(address="10.0.0.9"))
    assert "probing 10.0.0.9: 0 of 1 probes were answered" in result["msg"]


def test_stop_path_interrupts_the_command(tmp_path):
    stop = tmp_path / "stop"
    # Like fping, the command handles SIGINT itself (a shell's background job would otherwise inherit it ignored).
    proc = subprocess.Popen([sys.executable, "-c", "import signal, time\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
                             "time.sleep(30)"])
    threading.Timer(0.3, stop.touch).start()
    outcome = {"stopped_by": "count"}
    began = time.monotonic()
    network_probe.watch(proc, str(stop), 20.0, outcome, linger_s=0.4)
    waited = time.monotonic() - began
    assert proc.wait(timeout=10) != 0 and outcome["stopped_by"] == "stop_path" and 0.7 <= waited < 5


def test_deadline_kills_a_command_that_does_not_stop(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(30)"])
    outcome = {"stopped_by": "count"}
    network_probe.watch(proc, str(tmp_path / "never"), 0.3, outcome)
    assert proc.wait(timeout=10) == -9 and outcome["stopped_by"] == "deadline"


def test_a_command_that_ends_by_itself_stopped_by_count(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    outcome = {"stopped_by": "count"}
    network_probe.watch(proc, str(tmp_path / "never"), 20.0, outcome)
    assert outcome["stopped_by"] == "count"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("fping"), reason="fping at a 1 ms interval needs root")
def test_loopback_probes_for_real(run_module):
    result = run_module(network_probe, params(duration_s=0.3, priority="normal"))
    assert result["probes_sent"] == 300 and result["probes_lost"] == 0 and result["stopped_by"] == "count"
