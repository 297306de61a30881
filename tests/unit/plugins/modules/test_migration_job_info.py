# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""migration_job_info with a fake connection: libvirt's test driver has no job statistics."""

from __future__ import annotations

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _libvirt
from ansible_collections.openeuler.kae.plugins.modules import migration_job_info
from ansible_collections.openeuler.kae.tests.unit.plugins.modules.utils import fail_module, run_module

libvirt = pytest.importorskip("libvirt")

MIB = 1048576
RUNNING_JOB = {"type": 2, "operation": 5, "time_elapsed": 4100, "data_total": 200 * MIB, "data_processed": 160 * MIB,
               "data_remaining": 40 * MIB, "memory_bps": 75 * MIB, "memory_dirty_rate": 3072, "memory_page_size": 4096,
               "memory_iteration": 2, "downtime": 310}


class FakeDomain:
    def __init__(self, stats, downtime=100, stats_error=None):
        self.stats = stats
        self.downtime = downtime
        self.stats_error = stats_error

    def jobStats(self, flags=0):
        if self.stats_error:
            raise libvirt.libvirtError(self.stats_error)
        return dict(self.stats)

    def migrateGetMaxDowntime(self, flags):
        if self.downtime is None:
            raise libvirt.libvirtError("operation forbidden: read only access prevents virDomainMigrateGetMaxDowntime")
        return self.downtime


class FakeConn:
    def __init__(self, domains):
        self.domains = domains
        self.read_only = None
        self.closed = False

    def lookupByName(self, name):
        if name not in self.domains:
            error = libvirt.libvirtError("Domain not found: no domain with matching name '%s'" % name)
            error.get_error_code = lambda: libvirt.VIR_ERR_NO_DOMAIN
            raise error
        return self.domains[name]

    def close(self):
        self.closed = True


@pytest.fixture
def conn(monkeypatch, module_exits):
    holder = {}

    def connect(uri, read_only=False):
        holder["conn"].read_only = read_only
        return holder["conn"]
    monkeypatch.setattr(_libvirt, "connect", connect)
    return holder


def test_a_running_migration_is_one_sample_and_one_line(conn):
    conn["conn"] = FakeConn({"kae-guest": FakeDomain(RUNNING_JOB)})
    result = run_module(migration_job_info, {"domain": "kae-guest"})
    assert result["changed"] is False and result["active"] is True and result["job_type"] == 2
    assert result["sample"]["remaining_mib"] == 40.0 and result["sample"]["t_s"] == 4.1
    assert result["sample"]["dirty_rate_mib_s"] == 12.0 and result["sample"]["max_downtime_ms"] == 100
    assert result["line"] == ("kae-guest 4.1 s: 40.0 MiB of 200.0 MiB left, 75.0 MiB/s sent, dirty 12.0 MiB/s, iteration 2, "
                              "expected downtime 310 ms (limit 100 ms)")
    assert conn["conn"].read_only is True and conn["conn"].closed


def test_no_job_is_inactive(conn):
    conn["conn"] = FakeConn({"kae-guest": FakeDomain({"type": 0})})
    result = run_module(migration_job_info, {"domain": "kae-guest"})
    assert (result["active"], result["sample"], result["line"]) == (False, None, "kae-guest: no job is running")


def test_a_job_without_figures_yet_is_still_active(conn):
    conn["conn"] = FakeConn({"kae-guest": FakeDomain({"type": 2, "time_elapsed": 3}, downtime=None)})
    result = run_module(migration_job_info, {"domain": "kae-guest"})
    assert result["active"] is True and result["sample"] is None and result["max_downtime_ms"] is None
    assert result["line"] == "kae-guest: job started, no figures yet"


def test_unknown_downtime_limit_is_shown_as_unknown(conn):
    conn["conn"] = FakeConn({"kae-guest": FakeDomain(RUNNING_JOB, downtime=None)})
    result = run_module(migration_job_info, {"domain": "kae-guest"})
    assert result["line"].endswith("(limit ? ms)")


def test_absent_domain_and_unreadable_job_fail_naming_them(conn):
    conn["conn"] = FakeConn({})
    result = fail_module(migration_job_info, {"domain": "kae-guest", "uri": "qemu+ssh://kae-lab-a/system"})
    assert result["msg"] == "domain kae-guest is not defined on qemu+ssh://kae-lab-a/system"
    conn["conn"] = FakeConn({"kae-guest": FakeDomain(RUNNING_JOB, stats_error="Cannot recv data: Connection reset by peer")})
    result = fail_module(migration_job_info, {"domain": "kae-guest"})
    assert result["msg"] == "reading the job of kae-guest on qemu:///system failed: Cannot recv data: Connection reset by peer"


def test_a_bad_domain_name_is_refused_before_libvirt(conn):
    result = fail_module(migration_job_info, {"domain": "../etc"})
    assert "domain" in result["msg"] and "'/'" in result["msg"]


class ScriptedDomain(FakeDomain):
    """A domain whose job statistics follow SCRIPT, one entry a read (the last one repeats); None: it left the host."""

    def __init__(self, script):
        super().__init__(script[0])
        self.script = list(script)
        self.reads = 0

    def jobStats(self, flags=0):
        self.stats = self.script[min(self.reads, len(self.script) - 1)]
        self.reads += 1
        return dict(self.stats)

    def isActive(self):
        return 1


class LeavingConn(FakeConn):
    """A connection on which the domain stops being defined once its script says None."""

    def lookupByName(self, name):
        dom = self.domains.get(name)
        if isinstance(dom, ScriptedDomain) and dom.script[min(dom.reads, len(dom.script) - 1)] is None:
            del self.domains[name]
        return super().lookupByName(name)

    def getURI(self):
        return "qemu:///system"


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def waited(domains, script_name, wait_s):
    conn = LeavingConn(domains)
    clock = FakeClock()
    result = migration_job_info.wait_for_end(conn, "qemu:///system", script_name, wait_s, clock=clock, sleep=clock.sleep)
    return result, clock.now - 100.0


def test_a_wait_answers_as_soon_as_the_job_it_saw_has_ended():
    dom = ScriptedDomain([RUNNING_JOB, RUNNING_JOB, {"type": 0}])
    result, took = waited({"kae-guest": dom}, "kae-guest", 2.0)
    assert (result["active"], result["ended"], result["line"]) == (False, True, "kae-guest: no job is running")
    assert took == pytest.approx(2 * migration_job_info.WAIT_READ_INTERVAL_S) and dom.reads == 3


def test_a_wait_ends_when_the_guest_leaves_the_host():
    dom = ScriptedDomain([RUNNING_JOB, None])
    result, took = waited({"kae-guest": dom}, "kae-guest", 2.0)
    assert result["ended"] is True and result["active"] is False and result["sample"] is None
    assert took < 2.0


def test_a_wait_takes_a_job_that_starts_during_it_and_waits_for_its_end():
    dom = ScriptedDomain([{"type": 0}, {"type": 0}, RUNNING_JOB, {"type": 0}])
    result, _took = waited({"kae-guest": dom}, "kae-guest", 2.0)
    assert result["ended"] is True and dom.reads == 4


def test_a_job_still_running_at_the_end_of_the_wait_is_active_with_its_last_sample():
    dom = ScriptedDomain([RUNNING_JOB])
    result, took = waited({"kae-guest": dom}, "kae-guest", 1.0)
    assert (result["active"], result["ended"]) == (True, False) and result["sample"]["remaining_mib"] == 40.0
    assert took == pytest.approx(1.0)


def test_no_job_during_the_whole_wait_is_neither_active_nor_ended():
    dom = ScriptedDomain([{"type": 0}])
    result, took = waited({"kae-guest": dom}, "kae-guest", 1.0)
    assert (result["active"], result["ended"]) == (False, False) and took == pytest.approx(1.0)


def test_without_a_wait_one_read_answers():
    dom = ScriptedDomain([RUNNING_JOB, {"type": 0}])
    result, took = waited({"kae-guest": dom}, "kae-guest", 0)
    assert (result["active"], result["ended"], dom.reads, took) == (True, False, 1, 0)


def test_a_domain_whose_state_cannot_be_read_fails_instead_of_ending(conn):
    class Unreadable(FakeDomain):
        def isActive(self):
            raise libvirt.libvirtError("Cannot recv data: Connection reset by peer")
    conn["conn"] = LeavingConn({"kae-guest": Unreadable(RUNNING_JOB)})
    result = fail_module(migration_job_info, {"domain": "kae-guest", "wait_s": 1})
    assert result["msg"] == "cannot tell whether kae-guest runs on qemu:///system: Cannot recv data: Connection reset by peer"


@pytest.mark.parametrize("wait_s, message", [(-1, "wait_s must be at least 0, got -1"), (61, "wait_s must be at most 60, got 61"),
                                             ("soon", "wait_s must be a finite number written with the digits 0-9")])
def test_a_bad_wait_is_refused_before_libvirt(conn, wait_s, message):
    result = fail_module(migration_job_info, {"domain": "kae-guest", "wait_s": wait_s})
    assert result["msg"].startswith(message)
