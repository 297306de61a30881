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
