# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import threading
import time

import pytest

from ansible.module_utils import basic

from ansible_collections.openeuler.kae.plugins.module_utils import _libvirt
from ansible_collections.openeuler.kae.plugins.modules import live_migration
from ansible_collections.openeuler.kae.tests.unit.plugins.modules.utils import fail_module, run_module

libvirt = pytest.importorskip("libvirt")

RUNNING, PAUSED, SHUTOFF = 1, 3, 5
COMPLETED_STATS = {"type": 3, "operation": 5, "downtime": 21, "downtime_net": 20, "time_elapsed": 1003,
                   "data_total": 1000, "data_processed": 1000, "data_remaining": 0}


class FakeDomain:
    """A libvirt domain on one fake host; the lab's two hosts share a World."""

    def __init__(self, world, host):
        self.world = world
        self.host = host
        self.calls = []

    def state(self):
        if self.host in self.world.state_errors:
            raise self.world.state_errors[self.host]
        return [self.world.states[self.host], 1]

    def info(self):
        return [self.world.states[self.host], 262144, 262144, 2, 0]

    def jobInfo(self):
        return [self.world.job_type] + [0] * 11

    def jobStats(self, flags=0):
        if flags == libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED | libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED:
            return dict(self.world.completed.get(self.host, {"type": 0}))
        if self.world.active_stats is not None:
            return self.world.active_stats()
        return {"type": 2, "data_total": 256 * 1048576, "data_processed": 3 * 1048576}

    def suspend(self):
        self.calls.append(("suspend",))
        self.world.states[self.host] = PAUSED
        if self.world.complete_on_suspend:
            self.world.aborted.set()
        return 0

    def resume(self):
        self.calls.append(("resume",))
        self.world.states[self.host] = RUNNING
        return 0

    def migrateSetMaxDowntime(self, ms, flags):
        self.calls.append(("migrateSetMaxDowntime", ms, flags))

    def _migrate(self, how, target, params, flags):
        self.calls.append((how, target, params, flags))
        if self.world.migration_error:
            raise libvirt.libvirtError(self.world.migration_error)
        if self.world.hang:
            # Block like a migration that cannot converge, until abortJob() cancels it (or a pause lets it complete).
            self.world.aborted.wait(self.world.hang_s)
            if not self.world.complete_on_suspend:
                raise libvirt.libvirtError("operation aborted: migration out job: canceled by client")
        time.sleep(self.world.hold_s)
        self.world.states = dict(self.world.states_after)
        self.world.completed = dict(self.world.completed_after)
        self.world.after_migration()
        return self.world.domains["kae-lab-b"]

    def migrate3(self, dconn, params, flags):
        return self._migrate("migrate3", dconn.host, params, flags)

    def migrateToURI3(self, uri, params, flags):
        return self._migrate("migrateToURI3", uri, params, flags)

    def abortJob(self):
        self.calls.append(("abortJob",))
        if self.world.abort_ends_job:
            self.world.aborted.set()
        if self.world.abort_error:
            raise libvirt.libvirtError(self.world.abort_error)
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

    def setKeepAlive(self, interval, count):
        self.keepalive = (interval, count)
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
        self.hang_s = 10
        self.hold_s = 0
        self.active_stats = None
        self.complete_on_suspend = False
        self.aborted = threading.Event()
        self.abort_error = None
        self.abort_ends_job = True
        self.states_after = {"kae-lab-a": SHUTOFF, "kae-lab-b": RUNNING}
        self.unreachable = set()
        self.lookup_errors = {}
        self.state_errors = {}
        self.domains = {host: FakeDomain(self, host) for host in ("kae-lab-a", "kae-lab-b")}
        self.conns = {}

    def connect(self, uri, read_only=False):
        host = "kae-lab-a" if uri == "qemu:///system" else uri.split("//")[1].split("/")[0]
        if host in self.unreachable:
            raise _libvirt.LibvirtFailure("cannot connect to libvirt at %s: Cannot recv data: ssh: Could not resolve hostname %s" % (uri, host))
        self.conns[host] = FakeConn(self, host)
        return self.conns[host]

    def start_event_loop(self):
        self.event_loop_started = not self.conns

    def lookup(self, conn, name):
        if conn.host in self.lookup_errors:
            raise self.lookup_errors[conn.host]
        return self.domains[conn.host] if self.states.get(conn.host) is not None else None

    def after_migration(self):
        """Hook run when a migration completes; tests replace it to change the world at that moment."""


@pytest.fixture
def world(monkeypatch, tmp_path, module_exits):
    world = World({"kae-lab-a": RUNNING, "kae-lab-b": None})
    monkeypatch.setattr(_libvirt, "connect", world.connect)
    monkeypatch.setattr(_libvirt, "lookup_domain", world.lookup)
    monkeypatch.setattr(live_migration, "POLL_INTERVAL_S", 0.02)
    monkeypatch.setattr(_libvirt, "start_event_loop", world.start_event_loop)
    log = tmp_path / "kae-guest.log"
    log.write_text("123@1795629893.031141:migration_thread_setup_complete\n")
    world.log = log
    return world


def module_args(world, args):
    merged = {"domain": "kae-guest", "destination_uri": "qemu+ssh://kae-lab-b/system"}
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
    assert not {"log_path", "log_offset", "log_inode"} & set(result)
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


class CodedError(libvirt.libvirtError):
    """A libvirtError with a chosen error code (a real one takes it from libvirt's last error)."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code

    def get_error_code(self):
        return self.code


LOST = "cannot look up domain kae-guest on qemu+ssh://kae-lab-b/system: Cannot recv data: Connection reset by peer"


def test_a_host_that_cannot_be_asked_before_migrating_is_unknown_and_nothing_moves(world):
    world.lookup_errors["kae-lab-b"] = _libvirt.LibvirtFailure(LOST)
    result = fail(world)
    assert result["placement"] == {"kae-lab-a": "running", "kae-lab-b": "unknown"}
    assert result["placement_errors"] == {"kae-lab-b": LOST}
    assert result["msg"] == "cannot tell whether kae-guest runs on kae-lab-b: libvirt there did not answer; nothing was changed"
    assert world.domains["kae-lab-a"].calls == []


def test_a_host_lost_during_the_migration_is_unknown_not_absent(world):
    world.after_migration = lambda: world.lookup_errors.update({"kae-lab-b": _libvirt.LibvirtFailure(LOST)})
    result = fail(world)
    assert result["placement"] == {"kae-lab-a": "shut off", "kae-lab-b": "unknown"}
    assert result["placement_errors"] == {"kae-lab-b": LOST}
    assert result["outcome"] == "unknown"
    assert result["msg"] == ("libvirt reported the migration of kae-guest from kae-lab-a to kae-lab-b as done, but kae-guest is not "
                             "running on kae-lab-b alone (kae-lab-a: shut off, kae-lab-b: unknown (%s)): check both hosts" % LOST)


def test_a_state_that_cannot_be_read_is_unknown_and_a_vanished_domain_absent(world):
    world.state_errors["kae-lab-a"] = CodedError("Cannot write data: Broken pipe", libvirt.VIR_ERR_SYSTEM_ERROR)
    result = fail(world)
    assert result["placement"]["kae-lab-a"] == "unknown"
    assert result["placement_errors"]["kae-lab-a"] == "reading the state of kae-guest on kae-lab-a failed: Cannot write data: Broken pipe"
    world.state_errors["kae-lab-a"] = CodedError("Domain not found", libvirt.VIR_ERR_NO_DOMAIN)
    world.states["kae-lab-b"] = RUNNING
    assert run(world)["placement"] == {"kae-lab-a": "not defined", "kae-lab-b": "running"}


def test_a_successful_migration_says_migrated(world):
    result = run(world)
    assert (result["outcome"], result["placement_errors"]) == ("migrated", {})


@pytest.mark.parametrize("states_after, where", [
    ({"kae-lab-a": RUNNING, "kae-lab-b": RUNNING}, "kae-lab-a: running, kae-lab-b: running"),
    ({"kae-lab-a": RUNNING, "kae-lab-b": None}, "kae-lab-a: running, kae-lab-b: not defined"),
    ({"kae-lab-a": SHUTOFF, "kae-lab-b": 3}, "kae-lab-a: shut off, kae-lab-b: paused"),
])
def test_a_migration_libvirt_calls_done_must_leave_the_guest_on_the_destination_alone(world, states_after, where):
    world.states_after = states_after
    result = fail(world)
    assert result["msg"] == ("libvirt reported the migration of kae-guest from kae-lab-a to kae-lab-b as done, but kae-guest is not "
                             "running on kae-lab-b alone (%s): check both hosts" % where)
    assert result["outcome"] in ("unknown", "failed")
    assert "job" not in result


def test_a_clean_abort_reads_the_placement_again_and_says_aborted(world):
    world.hang = True
    result = fail(world, timeout_s=0.1)
    assert (result["outcome"], result["aborted"]) == ("aborted", True)
    assert result["placement"] == {"kae-lab-a": "running", "kae-lab-b": "not defined"}


def test_an_abort_leaving_the_incoming_domain_is_not_called_clean(world, monkeypatch):
    world.hang = True
    original = world.domains["kae-lab-a"].abortJob

    def abort_leaving_incoming():
        world.states["kae-lab-b"] = 3
        return original()

    monkeypatch.setattr(world.domains["kae-lab-a"], "abortJob", abort_leaving_incoming)
    result = fail(world, timeout_s=0.1)
    assert result["outcome"] == "unknown" and result["aborted"] is True
    assert result["msg"].endswith("; the job was aborted, but kae-guest is not running on kae-lab-a alone "
                                  "(kae-lab-a: running, kae-lab-b: paused): check both hosts")


def test_a_failed_abort_is_never_called_an_abort(world):
    world.hang = True
    world.abort_error = "Requested operation is not valid: no job is active on the domain"
    result = fail(world, timeout_s=0.1)
    assert "the job was aborted" not in result["msg"]
    assert result["msg"] == ("migration of kae-guest from kae-lab-a to kae-lab-b did not finish within 0.1 s (3.0 of 256.0 MiB sent); "
                             "abortJob failed (Requested operation is not valid: no job is active on the domain) and the job ended "
                             "by itself and kae-guest is still running on kae-lab-a")
    assert (result["outcome"], result["aborted"]) == ("failed", False)


@pytest.mark.parametrize("abort_error, asked", [
    (None, "the abort was requested"),
    ("Timed out during operation: cannot acquire state change lock", "abortJob failed (Timed out during operation: cannot acquire "
                                                                     "state change lock)"),
])
def test_a_job_that_goes_on_after_the_abort_leaves_the_outcome_unknown(world, monkeypatch, abort_error, asked):
    monkeypatch.setattr(live_migration, "ABORT_GRACE_S", 0.05)
    world.hang, world.hang_s, world.abort_ends_job, world.abort_error = True, 1.0, False, abort_error
    result = fail(world, timeout_s=0.1)
    assert "the job was aborted" not in result["msg"]
    assert result["msg"] == ("migration of kae-guest from kae-lab-a to kae-lab-b did not finish within 0.1 s (3.0 of 256.0 MiB sent); "
                             "%s, but the job did not end within 0.05 s after it, so the migration may still be running "
                             "(kae-lab-a: running, kae-lab-b: not defined): check both hosts (virsh domjobinfo kae-guest) before "
                             "touching kae-guest" % asked)
    assert (result["outcome"], result["aborted"]) == ("unknown", False)


def test_a_migration_error_with_the_destination_unreachable_is_unknown(world):
    world.migration_error = "Cannot recv data: Connection reset by peer"
    # The pre-flight sees the destination; it is lost once the migration starts.
    world.domains["kae-lab-a"].migrateSetMaxDowntime = lambda ms, flags: world.lookup_errors.update({"kae-lab-b": _libvirt.LibvirtFailure(LOST)})
    result = fail(world)
    assert result["outcome"] == "unknown"
    # Known to run on the source: the message says so, and that only the destination could not be asked.
    assert result["msg"].endswith("kae-lab-b: unknown (%s): it is still running on kae-lab-a, but kae-lab-b could not be asked "
                                  "whether it holds a copy: check kae-lab-b before touching kae-guest there" % LOST)


def test_a_migration_error_with_both_hosts_unanswerable_is_not_certain(world):
    world.migration_error = "Cannot recv data: Connection reset by peer"
    world.domains["kae-lab-a"].migrateSetMaxDowntime = lambda ms, flags: world.lookup_errors.update(
        {"kae-lab-a": _libvirt.LibvirtFailure(LOST), "kae-lab-b": _libvirt.LibvirtFailure(LOST)})
    result = fail(world)
    assert result["outcome"] == "unknown"
    assert result["msg"].endswith(": where it runs is not certain; check both hosts")


# Bad input: each a sentence naming the option and the expected form, before any connection is opened.
@pytest.mark.parametrize("args, message", [
    ({"timeout_s": "nan"}, "timeout_s must be a finite number written with the digits 0-9 (such as 2.5 or 1e3), got 'nan'"),
    ({"timeout_s": "inf"}, "timeout_s must be a finite number written with the digits 0-9 (such as 2.5 or 1e3), got 'inf'"),
    ({"timeout_s": float("nan")}, "timeout_s must be a finite number, got nan"),
    ({"timeout_s": "1e999"}, "timeout_s must be a finite number, got inf"),
    ({"timeout_s": -1}, "timeout_s must be greater than 0, got -1"),
    ({"timeout_s": "soon"}, "timeout_s must be a finite number written with the digits 0-9"),
    ({"timeout_s": "\u0661\u0662"}, "timeout_s must be a finite number written with the digits 0-9 (such as 2.5 or 1e3), got '\u0661\u0662'"),
    ({"max_downtime_ms": 2 ** 64}, "max_downtime_ms must be at most 2000000, got 18446744073709551616 (QEMU's downtime-limit is at most 2000 s)"),
    ({"max_downtime_ms": 2000001}, "max_downtime_ms must be at most 2000000, got 2000001 (QEMU's downtime-limit is at most 2000 s)"),
    ({"max_downtime_ms": "1e99999999"}, "max_downtime_ms must be a whole number written with the digits 0-9, got '1e99999999'"),
    ({"max_downtime_ms": "inf"}, "max_downtime_ms must be a whole number written with the digits 0-9, got 'inf'"),
    ({"max_downtime_ms": float("inf")}, "max_downtime_ms must be a whole number, got inf"),
    ({"max_downtime_ms": "\u0661\u0660\u0660"}, "max_downtime_ms must be a whole number written with the digits 0-9"),
    ({"max_downtime_ms": True}, "max_downtime_ms must be a whole number, got bool True"),
    ({"max_downtime_ms": 0}, "max_downtime_ms must be greater than 0, got 0"),
    ({"max_downtime_ms": [100]}, "argument 'max_downtime_ms' is of type list"),
    ({"bandwidth_mib_s": 2 ** 63}, "bandwidth_mib_s must be at most 8796093022207, got 9223372036854775808 (libvirt's migration bandwidth limit)"),
    ({"parallel": True, "parallel_connections": 256}, "parallel_connections must be at most 255, got 256 (QEMU's multifd-channels is at most 255)"),
    ({"domain": "../../etc/passwd"}, "domain must be a libvirt domain name (no '/', no leading '.', no control characters), but '../../etc/passwd'"),
    ({"domain": ".hidden"}, "starts with '.'"),
    ({"domain": "kae\nguest"}, "contains a control character"),
    ({"domain": "kae\x00guest"}, "domain must not contain a NUL byte"),
    ({"log_path": "/var/log/libvirt/qemu/kae-guest.log"}, "Unsupported parameters for (basic.py) module: log_path"),
    ({"destination_uri": "qemu+ssh://b\x00/system"}, "destination_uri must not contain a NUL byte"),
    ({"destination_xml": "<domain\x00/>"}, "destination_xml must not contain a NUL byte"),
    ({"source_uri": ""}, "source_uri must not be empty"),
])
def test_bad_input_is_a_sentence_naming_the_option(world, args, message):
    result = fail(world, **args)
    assert message in result["msg"]
    assert world.conns == {}


def test_the_destination_connection_is_watched_with_keepalive_started_before_it_opens(world):
    result = run(world)
    assert world.event_loop_started is True
    assert world.conns["kae-lab-b"].keepalive == (_libvirt.KEEPALIVE_INTERVAL_S, _libvirt.KEEPALIVE_COUNT)
    assert result["keepalive"] is True


def test_keep_alive_says_when_a_connection_cannot():
    class NoKeepalive:
        def setKeepAlive(self, interval, count):
            raise libvirt.libvirtError("this function is not supported by the connection driver: virConnectSetKeepAlive")

    class Unsupported:
        def setKeepAlive(self, interval, count):
            return 1

    assert _libvirt.keep_alive(NoKeepalive()) is False
    assert _libvirt.keep_alive(Unsupported()) is False


def test_a_destination_lost_at_the_timeout_is_named_and_the_source_copy_is_not_denied(world):
    """A cut link or a killed destination libvirtd during a migration that then times out."""
    world.hang = True
    world.states_after = dict(world.states)

    def lose_destination():
        world.lookup_errors["kae-lab-b"] = _libvirt.LibvirtFailure(LOST)
        return 0

    world.domains["kae-lab-a"].abortJob = lambda: (lose_destination(), world.aborted.set())[0]
    result = fail(world, timeout_s=0.1)
    assert result["outcome"] == "unknown"
    assert result["placement"] == {"kae-lab-a": "running", "kae-lab-b": "unknown"}
    assert result["msg"].endswith("the job was aborted and kae-guest is still running on kae-lab-a, but kae-lab-b could not be "
                                  "asked whether it holds a copy (%s): check kae-lab-b before touching kae-guest there" % LOST)


MIB = 1048576


def shrinking_stats(start_mib=200, step_mib=10):
    """Active-job statistics whose remaining data goes down by STEP_MIB at each read."""
    reads = []

    def stats():
        reads.append(1)
        remaining = max(start_mib - step_mib * len(reads), 1)
        return {"type": 2, "data_total": 256 * MIB, "data_processed": (256 - remaining) * MIB, "data_remaining": remaining * MIB,
                "memory_bps": 300 * MIB, "memory_dirty_rate": 2560, "memory_page_size": 4096, "memory_iteration": len(reads),
                "downtime": 150}
    return stats


def stuck_stats():
    """A guest dirtying 410 MiB/s while 300 MiB/s are sent: 812 MiB stay."""
    return {"type": 2, "data_total": 2048 * MIB, "data_processed": 4000 * MIB, "data_remaining": 812 * MIB,
            "memory_bps": 300 * MIB, "memory_dirty_rate": 410 * 256, "memory_page_size": 4096, "memory_iteration": 9,
            "downtime": 2700}


def test_samples_progress_and_raises_the_downtime_on_schedule(world):
    world.hold_s = 0.4
    world.active_stats = shrinking_stats()
    result = run(world, max_downtime_ms=100, progress_interval_s=0.02,
                 downtime_schedule={"steps": 2, "delay_s": 0.05, "ceiling_ms": 300})
    raises = [call for call in world.domains["kae-lab-a"].calls if call[0] == "migrateSetMaxDowntime"]
    assert raises == [("migrateSetMaxDowntime", 100, 0), ("migrateSetMaxDowntime", 200, 0), ("migrateSetMaxDowntime", 300, 0)]
    assert [step["max_downtime_ms"] for step in result["max_downtime_steps"]] == [100, 200, 300]
    assert result["max_downtime_final_ms"] == 300
    assert len(result["progress"]) >= 5
    remaining = [sample["remaining_mib"] for sample in result["progress"]]
    assert remaining == sorted(remaining, reverse=True) and remaining[0] < 200
    assert result["progress"][0]["dirty_rate_mib_s"] == 10.0 and result["progress"][0]["rate_mib_s"] == 300.0
    assert result["limit"] is None and result["suspended"] is None
    assert result["outcome"] == "migrated"


def test_stalled_migration_is_aborted_saying_why(world):
    world.hang = True
    world.active_stats = stuck_stats
    result = fail(world, progress_interval_s=0.02, progress_timeout_s=0.1)
    assert result["msg"] == ("migration of kae-guest from kae-lab-a to kae-lab-b made no progress for progress_timeout_s 0.1 s "
                             "(remaining 812 MiB, dirty rate 410 MiB/s above the 300 MiB/s sent: the migration cannot converge "
                             "at 100 ms); the job was aborted and kae-guest is still running on kae-lab-a")
    assert result["limit"]["name"] == "progress_timeout_s" and result["limit"]["at_s"] >= 0.1
    assert result["aborted"] is True and result["outcome"] == "aborted"
    assert result["progress"] and result["progress"][-1]["remaining_mib"] == 812.0
    assert ("suspend",) not in world.domains["kae-lab-a"].calls


def test_completion_limit_scales_with_the_guest_memory(world):
    world.hang = True
    world.active_stats = shrinking_stats(step_mib=0.001)
    # 256 MiB of guest memory at 0.4 s per GiB: 0.1 s.
    result = fail(world, progress_interval_s=0.02, completion_timeout_s_per_gib=0.4)
    assert result["msg"].startswith("migration of kae-guest from kae-lab-a to kae-lab-b did not finish within 0.1 s "
                                    "(completion_timeout_s_per_gib scaled by its memory) (remaining 200 MiB")
    assert result["limit"]["name"] == "completion_timeout_s_per_gib" and result["limit"]["value_s"] == 0.1


def test_suspend_at_the_limit_lets_the_migration_complete(world):
    world.hang = True
    world.complete_on_suspend = True
    world.active_stats = stuck_stats
    # The destination keeps the guest paused, as when libvirt does not resume it: the module resumes it there.
    world.states_after = {"kae-lab-a": SHUTOFF, "kae-lab-b": PAUSED}
    result = run(world, progress_interval_s=0.02, progress_timeout_s=0.1, at_limit="suspend")
    assert ("suspend",) in world.domains["kae-lab-a"].calls
    assert ("abortJob",) not in world.domains["kae-lab-a"].calls
    assert ("resume",) in world.domains["kae-lab-b"].calls
    assert result["suspended"]["limit"] == "progress_timeout_s" and result["suspended"]["at_s"] >= 0.1
    assert result["suspended"]["resumed_by"] == "module"
    assert result["placement"] == {"kae-lab-a": "shut off", "kae-lab-b": "running"}
    assert result["outcome"] == "migrated"


def test_the_absolute_timeout_aborts_even_with_suspend(world):
    world.hang = True
    world.active_stats = stuck_stats
    result = fail(world, progress_interval_s=0.02, timeout_s=0.1, at_limit="suspend")
    assert result["msg"].startswith("migration of kae-guest from kae-lab-a to kae-lab-b did not finish within 0.1 s (")
    assert ("suspend",) not in world.domains["kae-lab-a"].calls


@pytest.mark.parametrize("schedule, needle", [
    ({"steps": 2, "delay_s": 5, "ceiling_ms": 50}, "downtime_schedule.ceiling_ms (50) must be above max_downtime_ms (100)"),
    ({"steps": 2, "delay_s": 5, "ceiling_ms": 3000000}, "downtime_schedule.ceiling_ms must be at most 2000000"),
    ({"steps": 0, "delay_s": 5, "ceiling_ms": 300}, "downtime_schedule.steps must be greater than 0"),
])
def test_a_wrong_schedule_changes_nothing(world, schedule, needle):
    result = fail(world, downtime_schedule=schedule)
    assert needle in result["msg"]
    assert world.domains["kae-lab-a"].calls == []


def test_limits_must_be_positive_numbers(world):
    result = fail(world, progress_timeout_s=0)
    assert "progress_timeout_s must be greater than 0" in result["msg"]
    result = fail(world, completion_timeout_s_per_gib="inf")
    assert "completion_timeout_s_per_gib" in result["msg"]


# ---------------------------------------------------------------- the remap and the source's log read in the same call

PAUSE = "219@1795629893.041251:vm_state_notify running 0 reason 7 (finish-migrate)\n"
HOSTDEV = ("<hostdev mode='subsystem' type='pci' managed='no'><driver name='vfio'/><source>"
           "<address domain='0x0000' bus='0x31' slot='0x00' function='0x1'/></source></hostdev>")


def kae_vf(bdf, domain=None):
    return {"bdf": bdf, "engine": "zip", "function": "vf", "numa_node": 0, "driver": "hisi_acc_vfio_pci",
            "migratable_hw": True, "domain": domain, "domains": [domain] if domain else [], "owner_known": True,
            "queue_class": {"pf_q_num": 64, "num_vfs": 4, "last": False}}


@pytest.fixture
def remap_world(world, monkeypatch):
    """The guest holds VF 31:00.1 on the source; each host's libvirt answers who holds its VFs from world.owners."""
    world.owners = {"kae-lab-a": ({"0000:31:00.1": ["kae-guest"]}, {"available": True}),
                    "kae-lab-b": ({}, {"available": True})}
    xml = "<domain type='kvm'><name>kae-guest</name><devices>%s</devices></domain>" % HOSTDEV
    FakeDomain.XMLDesc = lambda self, flags=0: xml
    FakeDomain.isPersistent = lambda self: True
    monkeypatch.setattr(live_migration._devices, "scan", lambda sysfs: [kae_vf("0000:31:00.1")])
    monkeypatch.setattr(live_migration._devices, "connection_owners", lambda conn, uri, lab=False: world.owners[conn.host])
    yield world
    del FakeDomain.XMLDesc, FakeDomain.isPersistent


def test_the_remap_reads_the_destinations_owners_again_and_migrates_with_its_xml(remap_world):
    # Facts read earlier call 31:00.1 free on the destination; its libvirt now says another guest took it.
    remap_world.owners["kae-lab-b"] = ({"0000:31:00.1": ["other"]}, {"available": True})
    result = run(remap_world, destination_devices=[kae_vf("0000:31:00.1"), kae_vf("0000:31:00.2")])
    assert result["remap"]["mapping"] == {"0000:31:00.1": "0000:31:00.2"} and result["remap"]["remapped"] is True
    params = remap_world.domains["kae-lab-a"].calls[1][2]
    assert 'function="0x2"' in params["destination_xml"] and params["destination_xml"] == result["remap"]["destination_xml"]
    assert params["persistent_xml"] == result["remap"]["persistent_xml"]
    assert result["source_devices"][0]["domain"] == "kae-guest"


def test_the_remap_keeps_free_addresses_and_passes_no_xml(remap_world):
    result = run(remap_world, destination_devices=[kae_vf("0000:31:00.1", domain="stale")])
    assert result["remap"]["remapped"] is False
    assert "destination_xml" not in remap_world.domains["kae-lab-a"].calls[1][2]


def test_the_remap_takes_only_the_destination_vfs_given(remap_world):
    # 31:00.1 is taken there; 31:00.2 and 31:00.3 are free, but a plan reserved 31:00.3 for this guest.
    remap_world.owners["kae-lab-b"] = ({"0000:31:00.1": ["other"]}, {"available": True})
    devices = [kae_vf("0000:31:00.1"), kae_vf("0000:31:00.2"), kae_vf("0000:31:00.3")]
    result = run(remap_world, destination_devices=devices, destination_vfs=["0000:31:00.3"])
    assert result["remap"]["mapping"] == {"0000:31:00.1": "0000:31:00.3"}


def test_a_reserved_vf_another_guest_holds_migrates_nothing(remap_world):
    remap_world.owners["kae-lab-b"] = ({"0000:31:00.1": ["other"]}, {"available": True})
    devices = [kae_vf("0000:31:00.1"), kae_vf("0000:31:00.2")]
    result = fail(remap_world, destination_devices=devices, destination_vfs=["0000:31:00.1"])
    assert "nothing was migrated" in result["msg"]
    assert remap_world.domains["kae-lab-a"].calls == []


def test_destination_vfs_must_be_addresses_and_need_destination_devices(world):
    assert "destination_vfs[0]" in fail(world, destination_devices=[], destination_vfs=["31:00"])["msg"]
    assert "missing parameter(s) required by 'destination_vfs': destination_devices" in fail(world, destination_vfs=["0000:31:00.3"])["msg"]
    assert world.domains["kae-lab-a"].calls == []


def test_a_destination_whose_owners_cannot_be_read_migrates_nothing(remap_world):
    remap_world.owners["kae-lab-b"] = ({}, {"available": False, "reason": "cannot read the domains on B: gone"})
    result = fail(remap_world, destination_devices=[kae_vf("0000:31:00.1"), kae_vf("0000:31:00.2")])
    assert "VF ownership could not be read (cannot read the domains on B: gone)" in result["msg"]
    assert "nothing was migrated" in result["msg"]
    assert [call[0] for call in remap_world.domains["kae-lab-a"].calls] == []


def test_destination_devices_and_a_given_xml_are_exclusive(world):
    result = fail(world, destination_devices=[], destination_xml="<domain/>")
    assert "mutually exclusive" in result["msg"]


def test_the_source_log_is_read_after_the_migration(world, monkeypatch):
    monkeypatch.setattr(live_migration._logread, "QEMU_LOG_DIR", str(world.log.parent))
    mark = world.log.stat().st_size
    world.after_migration = lambda: world.log.write_text(world.log.read_text() + PAUSE)
    result = run(world, trace_offset=mark, trace_inode=world.log.stat().st_ino, profile="upstream")
    events = result["source_events"]
    assert [event["args"] for event in events["events"]] == ["running 0 reason 7 (finish-migrate)"]
    assert events["next_offset"] == world.log.stat().st_size and events["log_path"] == str(world.log)


def test_a_late_pause_event_is_waited_for_and_a_missing_log_is_said(world, monkeypatch):
    monkeypatch.setattr(live_migration._logread, "QEMU_LOG_DIR", str(world.log.parent))
    monkeypatch.setattr(live_migration, "SOURCE_LOG_WAIT_S", 0.1)
    result = run(world, trace_offset=0)
    assert result["source_events"]["events"] == []
    world.log.unlink()
    world.states = {"kae-lab-a": RUNNING, "kae-lab-b": None}
    result = run(world, trace_offset=0)
    assert "source_events" not in result and "does not exist" in result["source_events_error"]


@pytest.mark.parametrize("args, message", [
    ({"trace_offset": -1}, "trace_offset must be at least 0, got -1"),
    ({"trace_inode": 5}, "missing parameter(s) required by 'trace_inode': trace_offset"),
])
def test_bad_read_options_are_named(world, args, message):
    assert message in fail(world, **args)["msg"]
