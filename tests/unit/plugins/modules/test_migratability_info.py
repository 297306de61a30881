# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""migratability_info with a fake libvirt connection answering QMP commands with replies recorded in the lab."""

from __future__ import annotations

import json
import math

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _libvirt
from ansible_collections.openeuler.kae.plugins.modules import migratability_info

libvirt = pytest.importorskip("libvirt")

IVSHMEM = "Migration is disabled when using feature 'peer mode' in device 'ivshmem'"
START = "2026-12-02 15:21:42.185+0000: starting up libvirt version: 9.0.0, qemu version: 7.2.22, hostname: kae-lab-a\n"
RESUMED = "76@1796224884.449519:vm_state_notify running 1 reason 9 (running)\n"
TRACE_XML = ("<qemu:commandline><qemu:arg value='--trace'/><qemu:arg value='all_vcpus*'/><qemu:arg value='--trace'/>"
             "<qemu:arg value='vm_state_notify'/></qemu:commandline>")


def domain_xml(trace=True):
    return ("<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>g</name><devices/>%s</domain>"
            % (TRACE_XML if trace else ""))


class FakeDomain:
    def __init__(self, active=True, live_trace=True, defined_trace=True, replies=None):
        self.active = active
        self.xml = {0: domain_xml(live_trace), libvirt.VIR_DOMAIN_XML_INACTIVE: domain_xml(defined_trace)}
        self.replies = replies or {}
        self.sent = []

    def name(self):
        return "g"

    def isActive(self):
        return self.active

    def XMLDesc(self, flags):
        return self.xml[flags]


class FakeConn:
    def __init__(self, dom, version=7002022):
        self.dom = dom
        self.version = version
        self.closed = False

    def lookupByName(self, name):
        if self.dom is None:
            error = libvirt.libvirtError("Domain not found: no domain with matching name '%s'" % name)
            error.err = (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_QEMU, error.args[0], 2, None, None, None, 0, 0)
            raise error
        return self.dom

    def getVersion(self):
        return self.version

    def getHostname(self):
        return "kae-lab-a"

    def getURI(self):
        return "qemu:///system"

    def close(self):
        self.closed = True


@pytest.fixture
def world(monkeypatch, tmp_path):
    """A fake host: connect() gives its connection, the monitor answers from dom.replies, the log is a file."""
    state = {"conn": FakeConn(FakeDomain(replies={"query-migrate": '{"return":{},"id":"libvirt-1"}'})),
             "log": tmp_path / "g.log"}
    state["log"].write_text(START + RESUMED)

    def connect(uri, read_only=False):
        assert read_only is False  # the monitor passthrough needs a read-write connection
        return state["conn"]

    def monitor(dom, command, host):
        name = json.loads(command)["execute"]
        dom.sent.append(json.loads(command))
        reply = dom.replies.get(name)
        if isinstance(reply, Exception):
            raise reply
        if name == "trace-event-get-state" and reply is None:
            event = json.loads(command)["arguments"]["name"]
            states = dom.replies.get("states", {})
            if event not in states:
                return '{"id":"libvirt-2","error":{"class":"GenericError","desc":"unknown event \\"%s\\""}}' % event
            return '{"return":[{"name":"%s","vcpu":false,"state":"%s"}],"id":"libvirt-2"}' % (event, states[event])
        return reply

    monkeypatch.setattr(_libvirt, "connect", connect)
    monkeypatch.setattr(_libvirt, "qemu_monitor_command", monitor)
    monkeypatch.setattr(migratability_info.time, "sleep", lambda seconds: state.get("on_sleep", lambda: None)())
    return state


def args(world, **extra):
    base = {"domain": "g", "log_path": str(world["log"]), "timeout_s": 0}
    base.update(extra)
    return base


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_migratable_guest_whose_trace_arrives_is_a_go(world, run_module, check_mode):
    result = run_module(migratability_info, args(world), check_mode=check_mode)
    assert result["go"] is True and result["problems"] == [] and result["changed"] is False
    assert result["qemu"] == {"version": "7.2.22", "blocked_reasons": [], "status": None}
    assert result["trace"]["event"]["name"] == "vm_state_notify" and result["trace"]["states"] == {}
    assert result["msg"] == "g on kae-lab-a can migrate: QEMU reports no blocker; trace event vm_state_notify at 1796224884.449519"
    assert world["conn"].closed
    # Only query-migrate was sent: the trace was proven from the log alone.
    assert world["conn"].dom.sent == [{"execute": "query-migrate"}]


def test_qemus_blocker_is_refused_in_its_own_words(world, run_module):
    world["conn"].dom.replies["query-migrate"] = '{"return":{"blocked-reasons":["%s"]},"id":"libvirt-411"}' % IVSHMEM
    result = run_module(migratability_info, args(world))
    assert result["go"] is False
    assert result["problems"] == ["QEMU refuses to migrate g on kae-lab-a: " + IVSHMEM]
    assert result["qemu"]["blocked_reasons"] == [IVSHMEM]


def test_every_failed_check_is_listed(world, run_module):
    world["conn"].dom = FakeDomain(live_trace=False, defined_trace=True, replies={
        "query-migrate": '{"return":{"blocked-reasons":["%s"],"status":"active"}}' % IVSHMEM, "states": {"vm_state_notify": "disabled"}})
    world["log"].write_text(START)
    result = run_module(migratability_info, args(world))
    assert result["go"] is False and len(result["problems"]) == 3
    assert result["problems"][0] == "QEMU refuses to migrate g on kae-lab-a: " + IVSHMEM
    assert result["problems"][1].startswith("a migration of g is already in progress on kae-lab-a (QEMU's migration status: active)")
    assert "it was started before they were added; restart the guest" in result["problems"][2]
    assert result["trace"]["states"] == {"all_vcpus_paused": "unknown", "all_vcpus_prepared": "unknown", "vm_state_notify": "disabled"}


def test_a_guest_that_does_not_run_here_is_no_go_without_asking(world, run_module):
    world["conn"].dom.active = False
    result = run_module(migratability_info, args(world))
    assert result["go"] is False and result["active"] is False
    assert result["problems"] == ["g is not running on kae-lab-a (defined, not running): QEMU can only be asked where the guest runs"]
    assert "qemu" not in result and "trace" not in result and world["conn"].dom.sent == []


def test_an_undefined_guest_is_no_go(world, run_module):
    world["conn"].dom = None
    result = run_module(migratability_info, args(world))
    assert result["go"] is False and "(not defined)" in result["problems"][0]


def test_a_monitor_that_cannot_be_asked_is_never_a_pass(world, run_module):
    world["conn"].dom.replies["query-migrate"] = _libvirt.LibvirtFailure("cannot send query-migrate to the QEMU monitor of g: timed out")
    result = run_module(migratability_info, args(world, checks=["qemu"]))
    assert result["go"] is False
    assert result["problems"] == ["cannot run the qemu check of g on kae-lab-a: cannot send query-migrate to the QEMU monitor of g: timed out"]


def test_a_qemu_older_than_6_0_is_refused(world, run_module):
    world["conn"].version = 5002000
    result = run_module(migratability_info, args(world, checks=["qemu"]))
    assert result["go"] is False and "QEMU 5.2.0 does not report migration blockers" in result["problems"][0]


def test_a_missing_log_is_a_problem_not_a_pass(world, run_module):
    world["log"].unlink()
    result = run_module(migratability_info, args(world, checks=["trace"]))
    assert result["go"] is False and "does not exist: check log_path" in result["problems"][0]


def test_waits_for_the_first_event_of_a_guest_that_just_started(world, run_module):
    world["log"].write_text(START)
    world["on_sleep"] = lambda: world["log"].write_text(START + RESUMED)
    result = run_module(migratability_info, args(world, checks=["trace"], timeout_s=30))
    assert result["go"] is True and result["trace"]["process_started"] is None


def test_does_not_wait_when_the_running_qemu_has_no_trace_arguments(world, run_module):
    world["conn"].dom = FakeDomain(live_trace=False, defined_trace=False, replies={"states": {}})
    world["log"].write_text(START)
    world["on_sleep"] = lambda: pytest.fail("waited although no trace argument can make an event arrive")
    result = run_module(migratability_info, args(world, checks=["trace"], timeout_s=30))
    assert "neither the running QEMU nor the guest's definition has --trace arguments" in result["problems"][0]


def test_connection_failure_fails_the_module(monkeypatch, fail_module):
    def refuse(uri, read_only=False):
        raise _libvirt.LibvirtFailure("cannot connect to libvirt at %s: no route" % uri)

    monkeypatch.setattr(_libvirt, "connect", refuse)
    assert fail_module(migratability_info, {"domain": "g"})["msg"] == "cannot connect to libvirt at qemu:///system: no route"


@pytest.mark.parametrize("bad, message", [
    ({"domain": "a/b"}, "domain must be a libvirt domain name"),
    ({"domain": ".hidden"}, "domain must be a libvirt domain name"),
    ({"domain": ""}, "domain must not be empty"),
    ({"domain": "g\x00"}, "domain must not contain a NUL byte"),
    ({"domain": "g", "uri": "kae-lab-a"}, "uri must be a libvirt URI such as qemu:///system, got 'kae-lab-a'"),
    ({"domain": "g", "checks": []}, "checks must name at least one of qemu, trace"),
    ({"domain": "g", "checks": ["qemu", "disk"]}, "value of checks must be one or more of: qemu, trace"),
    ({"domain": "g", "profile": "fast"}, "value of profile must be one of"),
    ({"domain": "g", "max_bytes": 0}, "max_bytes must be greater than 0, got 0"),
    ({"domain": "g", "max_bytes": -5}, "max_bytes must be greater than 0, got -5"),
    ({"domain": "g", "max_bytes": 1 << 41}, "max_bytes must be at most 1099511627776"),
    ({"domain": "g", "max_bytes": "lots"}, "max_bytes"),
    ({"domain": "g", "timeout_s": -1}, "timeout_s must be at least 0, got -1"),
    ({"domain": "g", "timeout_s": math.inf}, "timeout_s must be a finite number"),
    ({"domain": "g", "timeout_s": math.nan}, "timeout_s must be a finite number"),
    ({"domain": "g", "timeout_s": 7200}, "timeout_s must be at most 3600"),
    ({"domain": "g", "log_path": "/var/log/a\x00b"}, "log_path (the path of a QEMU log file) must not contain a NUL byte"),
    ({}, "missing required arguments: domain"),
])
def test_bad_input_is_refused_before_anything_is_opened(monkeypatch, fail_module, bad, message):
    monkeypatch.setattr(_libvirt, "connect", lambda *a, **k: pytest.fail("connected despite bad input"))
    result = fail_module(migratability_info, bad)
    assert message in result["msg"]
    assert "Traceback" not in result["msg"]


class FakeLibvirtQemu:
    VIR_DOMAIN_QEMU_MONITOR_COMMAND_DEFAULT = 0

    def __init__(self, reply):
        self.reply = reply
        self.calls = []

    def qemuMonitorCommand(self, dom, command, flags):
        self.calls.append((command, flags))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def test_monitor_command_goes_through_libvirt_qemu(monkeypatch):
    fake = FakeLibvirtQemu('{"return":{}}')
    monkeypatch.setattr(_libvirt, "libvirt_qemu", fake)
    monkeypatch.setattr(_libvirt, "HAS_LIBVIRT_QEMU", True)
    assert _libvirt.qemu_monitor_command(FakeDomain(), '{"execute": "query-migrate"}', "kae-lab-a") == '{"return":{}}'
    assert fake.calls == [('{"execute": "query-migrate"}', 0)]


def test_monitor_command_errors_name_command_domain_and_host(monkeypatch):
    monkeypatch.setattr(_libvirt, "libvirt_qemu", FakeLibvirtQemu(libvirt.libvirtError("Timed out during operation")))
    monkeypatch.setattr(_libvirt, "HAS_LIBVIRT_QEMU", True)
    with pytest.raises(_libvirt.LibvirtFailure, match=r"cannot send \{\"execute\": \"query-migrate\"\} to the QEMU monitor of g on kae-lab-a: "):
        _libvirt.qemu_monitor_command(FakeDomain(), '{"execute": "query-migrate"}', "kae-lab-a")
    monkeypatch.setattr(_libvirt, "HAS_LIBVIRT_QEMU", False)
    with pytest.raises(_libvirt.LibvirtFailure, match="the libvirt_qemu module of libvirt-python is not installed on kae-lab-a"):
        _libvirt.qemu_monitor_command(FakeDomain(), "{}", "kae-lab-a")
