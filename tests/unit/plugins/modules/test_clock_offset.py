# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import socket
import types

import pytest

from ansible_collections.openeuler.kae.plugins.modules import clock_offset
from ansible_collections.openeuler.kae.tests.unit.plugins.modules.utils import fail_module, run_module

ntplib = pytest.importorskip("ntplib")


class FakeClient:
    """NTP client answering from a script: server -> list of (offset_s, delay_s) or exceptions, consumed in order."""

    def __init__(self, script):
        self.script = {server: list(answers) for server, answers in script.items()}
        self.requests = []

    def request(self, host, version=2, timeout=5):
        self.requests.append((host, version, timeout))
        answer = self.script[host].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return types.SimpleNamespace(offset=answer[0], delay=answer[1])


@pytest.fixture
def client(monkeypatch, module_exits):
    holder = {}

    def install(script):
        holder["client"] = FakeClient(script)
        monkeypatch.setattr(clock_offset.ntplib, "NTPClient", lambda: holder["client"])
        return holder["client"]

    return install


def run(**args):
    return run_module(clock_offset, args)


def fail(**args):
    return fail_module(clock_offset, args)


def test_smallest_delay_sample_and_server(client):
    fake = client({
        "ntp-far": [(0.0100, 0.0300), (0.0090, 0.0250)],
        "ntp-near": [(0.0020, 0.0040), (-0.0004, 0.0005)],
    })
    result = run(servers=["ntp-far", "ntp-near"], samples=2, version=4, timeout_s=0.5)
    assert result["changed"] is False
    assert (result["server"], result["offset_ms"], result["delay_ms"]) == ("ntp-near", -0.4, 0.5)
    assert result["results"][0] == {"server": "ntp-far", "answered": 2, "offset_ms": 9.0, "delay_ms": 25.0, "error": None}
    assert fake.requests[0] == ("ntp-far", 4, 0.5)
    assert len(fake.requests) == 4


def test_silent_server_is_skipped(client):
    client({
        "ntp-down": [ntplib.NTPException("No response received from ntp-down.")],
        "ntp-up": [(0.001, 0.002)],
    })
    result = run(servers=["ntp-down", "ntp-up"], samples=1)
    assert result["server"] == "ntp-up"
    assert result["results"][0]["error"] == "No response received from ntp-down."


def test_no_server_answers_names_them(client):
    client({
        "ntp1": [ntplib.NTPException("No response received from ntp1.")],
        "nowhere": [socket.gaierror(-2, "Name or service not known")],
    })
    result = fail(servers=["ntp1", "nowhere"], samples=1)
    assert result["msg"] == (
        "no NTP server answered (ntp1: No response received from ntp1.; nowhere: [Errno -2] Name or service not known); "
        "check that the servers are reachable on UDP port 123 from this host")


def test_bad_arguments(client):
    client({})
    assert fail(servers=[])["msg"] == "servers must list at least one NTP server (host name or address), got []"
    assert fail(servers=[""])["msg"] == "servers[0] must not be empty"
    assert fail(servers=["ntp1"], samples=0)["msg"] == "samples must be at least 1, got 0"


def test_missing_ntplib(client, monkeypatch):
    client({})
    monkeypatch.setattr(clock_offset, "ntplib", None)
    monkeypatch.setattr(clock_offset, "NTPLIB_IMPORT_ERROR", "No module named 'ntplib'")
    assert "ntplib (python3-ntplib)" in fail(servers=["ntp1"])["msg"]


def test_real_request_to_a_silent_port_fails(module_exits):
    # A real ntplib request to loopback, where no NTP server runs: the failure path without fakes.
    result = fail(servers=["127.0.0.1"], samples=1, timeout_s=0.2)
    assert result["msg"].startswith("no NTP server answered (127.0.0.1: ")
    assert result["results"][0]["answered"] == 0


@pytest.mark.parametrize("args, message", [
    ({"timeout_s": "nan"}, "timeout_s must be a finite number written with the digits 0-9 (such as 2.5 or 1e3), got 'nan'"),
    ({"timeout_s": "-inf"}, "timeout_s must be a finite number written with the digits 0-9"),
    ({"timeout_s": float("inf")}, "timeout_s must be a finite number, got inf"),
    ({"timeout_s": "1e999"}, "timeout_s must be a finite number, got inf"),
    ({"timeout_s": 0}, "timeout_s must be greater than 0, got 0"),
    ({"timeout_s": 3600}, "timeout_s must be at most 60, got 3600"),
    ({"timeout_s": "\u0662"}, "timeout_s must be a finite number written with the digits 0-9"),
    ({"samples": "1e99999999"}, "samples must be a whole number written with the digits 0-9, got '1e99999999'"),
    ({"samples": "inf"}, "samples must be a whole number written with the digits 0-9, got 'inf'"),
    ({"samples": 10 ** 12}, "samples must be at most 100, got 1000000000000"),
    ({"samples": True}, "samples must be a whole number, got bool True"),
    ({"samples": "four"}, "samples must be a whole number written with the digits 0-9, got 'four'"),
    ({"version": "\u0663"}, "value of version must be one of: 1, 2, 3, 4"),
    ({"version": 5}, "value of version must be one of: 1, 2, 3, 4, got: 5"),
    ({"servers": ["ntp1\x00"]}, "servers[0] must not contain a NUL byte"),
    ({"servers": "ntp1"}, None),
])
def test_bad_input_is_a_sentence_naming_the_option(client, args, message):
    fake = client({"ntp1": [(0.001, 0.002)] * 4})
    params = dict({"servers": ["ntp1"]}, **args)
    if message is None:
        # A single name is taken as a list of one, as Ansible does for list options.
        assert run(**params)["server"] == "ntp1"
        return
    assert message in fail(**params)["msg"]
    assert fake.requests == []
