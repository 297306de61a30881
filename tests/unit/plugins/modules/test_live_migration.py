# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import threading

import pytest

from ansible.module_utils import basic

from ansible_collections.openeuler.kae.plugins.module_utils import _libvirt
from ansible_collections.openeuler.kae.plugins.modules import live_migration
from ansible_collections.openeuler.kae.tests.unit.plugins.modules.utils import fail_module, run_module

libvirt = pytest.importorskip("libvirt")

RUNNING, SHUTOFF = 1, 5
COMPLETED_STATS = {"type": 3, "operation": 5, "downtime": 21, "downtime_net": 20, "time_elapsed": 1003,
                   "data_total": 1000, "data_processed": 1000, "data_remaining": 0}


class FakeDomain:
    """A libvirt domain on one fake host; the lab's two hosts share a World."""

    def __init__(self, world, host):
        self.world = world
        self.host = host
        self.calls = []

    def state(self):
        return [self.world.states[self.host], 1]

    def info(self):
        return [self.world.states[self.host], 262144, 262144, 2, 0]

    def jobInfo(self):
        return [self.world.job_type] + [0] * 11

    def jobStats(self, flags=0):
        if flags == libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED | libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED:
            return dict(self.world.completed.get(self.host, {"type": 0}))
        return {"type": 2, "data_total": 256 * 1048576, "data_processed": 3 * 1048576}

    def migrateSetMaxDowntime(self, ms, flags):
        self.calls.append(("migrateSetMaxDowntime", ms, flags))

    def _migrate(self, how, target, params, flags):
        self.calls.append((how, target, params, flags))
        if self.world.migration_error:
            raise libvirt.libvirtError(self.world.migration_error)
        if self.world.hang:
            # Block like a migration that cannot converge, until abortJob() cancels it.
            self.world.aborted.wait(10)
            raise libvirt.libvirtError("operation aborted: migration out job: canceled by client")
        self.world.states = {"kae-lab-a": SHUTOFF, "kae-lab-b": RUNNING}
        self.world.completed = dict(self.world.completed_after)
        return self.world.domains["kae-lab-b"]

    def migrate3(self, dconn, params, flags):
        return self._migrate("migrate3", dconn.host, params, flags)

    def migrateToURI3(self, uri, params, flags):
        return self._migrate("migrateToURI3", uri, params, flags)

    def abortJob(self):
        self.calls.append(("abortJob",))
        self.world.aborted.set()
        return 0


class FakeConn:
    def __init__(self, world, host):
        self.world = world
        self.host = host
        self.closed = False

    def getHostname(self):
        return self.host

    def getLibVersion(self):
        return 9000000

    def getVersion(self):
        return 7002000

    def close(self):
        self.closed = True
        return 0


class World:
    """Both fake hosts: domain states (None = not defined) and what a migration does."""

    def __init__(self, states, completed_after=None):
        self.states = dict(states)
        self.completed = {}
        self.completed_after = completed_after if completed_after is not None else {"kae-lab-a": COMPLETED_STATS}
        self.job_type = 0
        self.migration_error = None
        self.hang = False
        self.aborted = threading.Event()
        self.unreachable = set()
        self.domains = {host: FakeDomain(self, host) for host in ("kae-lab-a", "kae-lab-b")}
        self.conns = {}

    def connect(self, uri, read_only=False):
        host = "kae-lab-a" if uri == "qemu:///system" else uri.split("//")[1].split("/")[0]
        if host in self.unreachable:
            raise _libvirt.LibvirtFailure("cannot connect to libvirt at %s: Cannot recv data: ssh: Could not resolve hostname %s" % (uri, host))
        self.conns[host] = FakeConn(self, host)
        return self.conns[host]

    def lookup(self, conn, name):
        return self.domains[conn.host] if self.states.get(conn.host) is not None else None


@pytest.fixture
def world(monkeypatch, tmp_path, module_exits):
    world = World({"kae-lab-a": RUNNING, "kae-lab-b": None})
    monkeypatch.setattr(_libvirt, "connect", world.connect)
    monkeypatch.setattr(_libvirt, "lookup_domain", world.lookup)
    monkeypatch.setattr(live_migration, "POLL_INTERVAL_S", 0.02)
    log = tmp_path / "kae-guest.log"
    log.write_text("123@1795629893.031141:migration_thread_setup_complete\n")
    world.log = log
    return world


def module_args(world, args):
    merged = {"domain": "kae-guest", "destination_uri": "qemu+ssh://kae-lab-b/system", "log_path": str(world.log)}
    merged.update(args)
    return merged


def run(world, check_mode=False, diff=False, **args):
    """Run the module expecting success; return its result."""
    return run_module(live_migration, module_args(world, args), check_mode=check_mode, diff=diff)


def fail(world, **args):
    """Run the module expecting failure; return its result."""
    return fail_module(live_migration, module_args(world, args))


def test_migrates_like_the_procedure(world):
    result = run(world, unsafe=True, migrate_uri="tcp://kae-lab-b", max_downtime_ms=80)
    assert result["changed"] is True
    src = world.domains["kae-lab-a"]
    assert src.calls[0] == ("migrateSetMaxDowntime", 80, 0)
    assert src.calls[1] == ("migrate3", "kae-lab-b", {"migrate_uri": "tcp://kae-lab-b"},
                            libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_UNSAFE)
    assert result["flags"] == ["live", "unsafe"]
    assert result["placement"] == {"kae-lab-a": "shut off", "kae-lab-b": "running"}
    assert result["job"]["downtime_ms"] == 21 and result["job"]["read_from"] == "source"
    assert result["log_offset"] == world.log.stat().st_size
    assert result["log_inode"] == world.log.stat().st_ino
    assert result["source_host"] == "kae-lab-a" and result["destination_host"] == "kae-lab-b"
    assert result["versions"] == {"libvirt": "9.0.0", "qemu": "7.2.0"}
    assert result["guest"] == {"name": "kae-guest", "vcpus": 2, "memory_mib": 256}
    assert result["duration_s"] >= 0 and result["started_at"] > 1.7e9
    assert all(conn.closed for conn in world.conns.values())


def test_peer2peer_uses_migrate_to_uri3(world):
    result = run(world, peer2peer=True, bandwidth_mib_s=512)
    how, target, params, flags = world.domains["kae-lab-a"].calls[1]
    assert (how, target, params) == ("migrateToURI3", "qemu+ssh://kae-lab-b/system", {"bandwidth": 512})
    assert flags == libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER


def test_job_read_on_destination_when_source_kept_nothing(world):
    world.completed_after = {"kae-lab-b": COMPLETED_STATS}
    result = run(world, undefine_source=True)
    assert result["job"]["read_from"] == "destination"
    assert result["job"]["total_time_ms"] == 1003


def test_no_completed_job_warns(world, monkeypatch):
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda module, text: warnings.append(text))
    world.completed_after = {}
    result = run(world)
    assert result["job"]["read_from"] == "none" and result["job"]["downtime_ms"] is None
    assert warnings == ["libvirt kept no completed-job statistics for kae-guest on kae-lab-a nor on kae-lab-b"]


def test_already_on_destination_is_unchanged(world):
    world.states = {"kae-lab-a": SHUTOFF, "kae-lab-b": RUNNING}
    result = run(world)
    assert result["changed"] is False
    assert result["msg"] == "kae-guest already runs on kae-lab-b and not on kae-lab-a: nothing to migrate"
    assert world.domains["kae-lab-a"].calls == [] and world.domains["kae-lab-b"].calls == []


def test_check_mode_predicts_and_touches_nothing(world):
    result = run(world, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["msg"] == "would migrate kae-guest from kae-lab-a to kae-lab-b"
    assert result["diff"] == {"before": {"running_on": "kae-lab-a"}, "after": {"running_on": "kae-lab-b"}}
    assert world.domains["kae-lab-a"].calls == []
    assert world.states == {"kae-lab-a": RUNNING, "kae-lab-b": None}


def test_destination_down_fails_before_anything(world):
    world.unreachable.add("kae-lab-b")
    result = fail(world)
    assert result["msg"].startswith("cannot connect to libvirt at qemu+ssh://kae-lab-b/system")
    assert world.domains["kae-lab-a"].calls == []


def test_destination_on_the_source_host(world):
    result = fail(world, destination_uri="qemu+ssh://kae-lab-a/system")
    assert result["msg"] == ("qemu:///system and qemu+ssh://kae-lab-a/system both lead to kae-lab-a: "
                             "a domain cannot migrate to the host it runs on; check destination_uri")
    assert world.domains["kae-lab-a"].calls == []


def test_domain_missing_everywhere(world):
    world.states = {"kae-lab-a": None, "kae-lab-b": None}
    result = fail(world)
    assert result["msg"] == ("kae-guest is not running on kae-lab-a (not defined) nor on kae-lab-b (not defined): "
                             "start it on the source first")


def test_running_job_refused(world):
    world.job_type = 2
    result = fail(world)
    assert "already has a job running on kae-lab-a" in result["msg"]
    assert world.domains["kae-lab-a"].calls == []


def test_bad_options_change_nothing(world):
    result = fail(world, parallel_connections=4)
    assert result["msg"].startswith("parallel_connections needs parallel=true")
    assert world.conns == {}


def test_libvirt_error_names_operation_and_hosts(world):
    world.migration_error = "internal error: unable to execute QEMU command 'migrate': device is not migratable"
    result = fail(world)
    assert result["msg"] == (
        "migration of kae-guest from kae-lab-a to kae-lab-b failed: internal error: unable to execute QEMU command "
        "'migrate': device is not migratable; the domain is now kae-lab-a: running, kae-lab-b: not defined")


def test_timeout_aborts_and_reports_guest_on_source(world):
    world.hang = True
    result = fail(world, timeout_s=0.1)
    assert result["aborted"] is True
    assert ("abortJob",) in world.domains["kae-lab-a"].calls
    assert result["msg"] == ("migration of kae-guest from kae-lab-a to kae-lab-b did not finish within 0.1 s "
                             "(3.0 of 256.0 MiB sent); the job was aborted and kae-guest is still running on kae-lab-a")
    assert result["placement"] == {"kae-lab-a": "running", "kae-lab-b": "not defined"}


def test_missing_libvirt(world, monkeypatch):
    monkeypatch.setattr(_libvirt, "HAS_LIBVIRT", False)
    monkeypatch.setattr(_libvirt, "LIBVIRT_IMPORT_ERROR", "Traceback: No module named 'libvirt'")
    result = fail(world)
    assert "libvirt-python (python3-libvirt)" in result["msg"]
