# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""dirty_rate_info with a fake connection: libvirt's test driver cannot measure a dirty rate."""

from __future__ import annotations

import time

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _convergence
from ansible_collections.openeuler.kae.plugins.module_utils import _libvirt
from ansible_collections.openeuler.kae.plugins.modules import dirty_rate_info
from ansible_collections.openeuler.kae.tests.unit.plugins.modules.utils import fail_module, run_module

libvirt = pytest.importorskip("libvirt")


class FakeDomain:
    def __init__(self, active=True, memory_kib=196608, max_speed=_convergence.UNLIMITED_BANDWIDTH_MIB_S):
        self.active = active
        self.memory_kib = memory_kib
        self.max_speed = max_speed
        self.started = None

    def isActive(self):
        return 1 if self.active else 0

    def info(self):
        return [1, self.memory_kib, self.memory_kib, 1, 0]

    def startDirtyRateCalc(self, seconds, flags):
        self.started = (seconds, time.time())
        self.flags = flags
        return 0

    def migrateGetMaxSpeed(self, flags):
        return self.max_speed


class FakeConn:
    def __init__(self, dom, rate=35, polls_until_done=2, stale=False):
        self.dom = dom
        self.rate = rate
        self.polls_until_done = polls_until_done
        self.stale = stale
        self.polls = 0
        self.read_only = None

    def lookupByName(self, name):
        if self.dom is None:
            error = libvirt.libvirtError("Domain not found")
            error.get_error_code = lambda: libvirt.VIR_ERR_NO_DOMAIN
            raise error
        return self.dom

    def domainListGetStats(self, doms, stats):
        assert stats == libvirt.VIR_DOMAIN_STATS_DIRTYRATE
        # Host monotonic seconds, as QEMU reports them: 500 for an earlier measurement, 600 for the one asked.
        if self.dom.started is None or self.stale:
            return [(doms[0], {"dirtyrate.calc_status": 2, "dirtyrate.calc_start_time": 500,
                               "dirtyrate.calc_period": 1, "dirtyrate.megabytes_per_second": 999})]
        self.polls += 1
        done = self.polls >= self.polls_until_done
        return [(doms[0], {"dirtyrate.calc_status": 2 if done else 1, "dirtyrate.calc_start_time": 600,
                           "dirtyrate.calc_period": self.dom.started[0], "dirtyrate.megabytes_per_second": self.rate})]

    def close(self):
        pass


@pytest.fixture
def conn(monkeypatch, module_exits):
    holder = {}

    def connect(uri, read_only=False):
        holder["conn"].read_only = read_only
        return holder["conn"]
    monkeypatch.setattr(_libvirt, "connect", connect)
    monkeypatch.setattr(dirty_rate_info, "POLL_S", 0.01)
    return holder


def test_measures_and_estimates_with_the_given_bandwidth(conn):
    conn["conn"] = FakeConn(FakeDomain())
    result = run_module(dirty_rate_info, {"domain": "kae-guest", "calc_s": 2, "bandwidth_mib_s": 1024}, check_mode=True)
    assert result["changed"] is False and conn["conn"].read_only is False
    assert conn["conn"].dom.started[0] == 2
    # By default QEMU samples pages, which costs the guest nothing.
    assert conn["conn"].dom.flags == libvirt.VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING and result["mode"] == "page_sampling"
    assert (result["dirty_rate_mib_s"], result["memory_mib"], result["bandwidth_mib_s"]) == (35.0, 192, 1024)
    assert result["estimate"]["converges"] is True
    assert result["estimate"]["text"].startswith("dirty rate 35.0 MiB/s, bandwidth 1024.0 MiB/s: converges")


def test_uses_the_domain_speed_limit_and_says_when_there_is_none(conn):
    conn["conn"] = FakeConn(FakeDomain(max_speed=300), rate=410)
    result = run_module(dirty_rate_info, {"domain": "kae-guest", "max_downtime_ms": 100})
    assert result["bandwidth_mib_s"] == 300 and result["estimate"]["converges"] is False
    conn["conn"] = FakeConn(FakeDomain())
    result = run_module(dirty_rate_info, {"domain": "kae-guest"})
    assert result["bandwidth_mib_s"] is None and result["estimate"]["converges"] is None
    assert "bandwidth unknown" in result["estimate"]["text"]


def test_an_older_measurement_is_not_taken_for_this_one(conn, monkeypatch):
    monkeypatch.setattr(dirty_rate_info, "GRACE_S", 0.1)
    conn["conn"] = FakeConn(FakeDomain(), stale=True)
    result = fail_module(dirty_rate_info, {"domain": "kae-guest", "calc_s": 1})
    assert result["msg"] == "QEMU did not report the dirty rate of kae-guest on qemu:///system within 1.1 s"


def test_a_guest_that_does_not_run_or_exist_is_refused(conn):
    conn["conn"] = FakeConn(FakeDomain(active=False))
    assert fail_module(dirty_rate_info, {"domain": "kae-guest"})["msg"] == (
        "domain kae-guest does not run on qemu:///system: only a running guest dirties memory")
    conn["conn"] = FakeConn(None)
    assert fail_module(dirty_rate_info, {"domain": "kae-guest"})["msg"] == "domain kae-guest is not defined on qemu:///system"


@pytest.mark.parametrize("args, needle", [
    ({"calc_s": 0}, "calc_s must be greater than 0"),
    ({"calc_s": 61}, "calc_s must be at most 60"),
    ({"max_downtime_ms": 0}, "max_downtime_ms must be greater than 0"),
    ({"bandwidth_mib_s": -1}, "bandwidth_mib_s must be greater than 0"),
])
def test_bad_numbers_are_refused_before_libvirt(conn, args, needle):
    conn["conn"] = FakeConn(FakeDomain())
    result = fail_module(dirty_rate_info, dict({"domain": "kae-guest"}, **args))
    assert needle in result["msg"]
    assert conn["conn"].dom.started is None


@pytest.mark.parametrize("mode, flags", [("dirty_bitmap", "VIR_DOMAIN_DIRTYRATE_MODE_DIRTY_BITMAP"),
                                         ("dirty_ring", "VIR_DOMAIN_DIRTYRATE_MODE_DIRTY_RING")])
def test_the_mode_chooses_how_qemu_measures(conn, mode, flags):
    conn["conn"] = FakeConn(FakeDomain())
    result = run_module(dirty_rate_info, {"domain": "kae-guest", "mode": mode, "bandwidth_mib_s": 100})
    assert conn["conn"].dom.flags == getattr(libvirt, flags) and result["mode"] == mode
