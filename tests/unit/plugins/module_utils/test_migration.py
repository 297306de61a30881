# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import threading
import types

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _migration as mig

# Stand-in for the libvirt module: only the constants migration_flags reads.
FAKE_CONSTANTS = types.SimpleNamespace(
    VIR_MIGRATE_LIVE=1, VIR_MIGRATE_PEER2PEER=2, VIR_MIGRATE_TUNNELLED=4, VIR_MIGRATE_PERSIST_DEST=8,
    VIR_MIGRATE_UNDEFINE_SOURCE=16, VIR_MIGRATE_UNSAFE=512, VIR_MIGRATE_ABORT_ON_ERROR=4096,
    VIR_MIGRATE_AUTO_CONVERGE=8192, VIR_MIGRATE_TLS=65536, VIR_MIGRATE_PARALLEL=131072,
)


def params(**overrides):
    base = dict(
        domain="kae-guest", destination_uri="qemu+ssh://kae-lab-b/system", source_uri="qemu:///system",
        migrate_uri=None, max_downtime_ms=100, live=True, peer2peer=False, tunnelled=False, unsafe=False,
        persist_dest=False, undefine_source=False, abort_on_error=False, auto_converge=False, tls=False,
        parallel=False, parallel_connections=None, bandwidth_mib_s=None, destination_xml=None,
        persistent_xml=None, timeout_s=300.0,
    )
    base.update(overrides)
    return base


class TestOptionProblems:
    def test_defaults_are_consistent(self):
        assert mig.option_problems(params()) == []

    def test_procedure_options_are_consistent(self):
        assert mig.option_problems(params(unsafe=True, migrate_uri="tcp://kae-lab-b")) == []

    def test_parallel_connections_need_parallel(self):
        problems = mig.option_problems(params(parallel_connections=4))
        assert problems == ["parallel_connections needs parallel=true (libvirt's parallel migration); "
                            "set parallel: true or drop parallel_connections"]
        assert mig.option_problems(params(parallel=True, parallel_connections=4)) == []

    def test_tunnelled_needs_peer2peer_and_no_migrate_uri(self):
        problems = mig.option_problems(params(tunnelled=True, migrate_uri="tcp://kae-lab-b"))
        assert len(problems) == 2
        assert "needs peer2peer=true" in problems[0]
        assert "migrate_uri cannot be used with tunnelled=true" in problems[1]

    @pytest.mark.parametrize("other", ["parallel", "tls"])
    def test_tunnelled_excludes(self, other):
        problems = mig.option_problems(params(tunnelled=True, peer2peer=True, **{other: True}))
        assert problems == ["tunnelled=true cannot be combined with %s=true; choose one of them" % other]

    @pytest.mark.parametrize("name", ["max_downtime_ms", "timeout_s", "bandwidth_mib_s"])
    def test_positive_numbers(self, name):
        assert mig.option_problems(params(**{name: 0})) == ["%s must be greater than 0, got 0" % name]

    def test_uris(self):
        problems = mig.option_problems(params(destination_uri="kae-lab-b", migrate_uri="kae-lab-b"))
        assert problems == [
            "destination_uri must be a libvirt URI such as qemu+ssh://HOST/system, got 'kae-lab-b'",
            "migrate_uri must look like tcp://HOST (optionally with :PORT), got 'kae-lab-b'",
        ]

    def test_same_source_and_destination(self):
        problems = mig.option_problems(params(destination_uri="qemu:///system"))
        assert problems == ["destination_uri and source_uri are both qemu:///system: a domain cannot migrate to the host it runs on"]


class TestFlagsAndParams:
    def test_default_is_live_only(self):
        assert mig.migration_flags(params(), FAKE_CONSTANTS) == (1, ["live"])

    def test_every_flag(self):
        options = {option: True for option, _constant in mig.FLAG_OPTIONS}
        flags, names = mig.migration_flags(params(**options), FAKE_CONSTANTS)
        assert flags == 1 | 2 | 4 | 8 | 16 | 512 | 4096 | 8192 | 65536 | 131072
        assert names == [option for option, _constant in mig.FLAG_OPTIONS]

    def test_procedure_flags(self):
        flags, names = mig.migration_flags(params(unsafe=True), FAKE_CONSTANTS)
        assert (flags, names) == (1 | 512, ["live", "unsafe"])

    def test_flag_names_exist_in_libvirt(self):
        libvirt = pytest.importorskip("libvirt")
        for _option, constant in mig.FLAG_OPTIONS:
            assert isinstance(getattr(libvirt, constant), int)

    def test_params_leave_out_unset(self):
        assert mig.migration_params(params()) == {}

    def test_params_mapping(self):
        typed = mig.migration_params(params(migrate_uri="tcp://kae-lab-b", destination_xml="<domain/>", persistent_xml="<domain/>",
                                            bandwidth_mib_s=64, parallel=True, parallel_connections=3))
        assert typed == {"migrate_uri": "tcp://kae-lab-b", "destination_xml": "<domain/>", "persistent_xml": "<domain/>",
                         "bandwidth": 64, "parallel.connections": 3}

    def test_param_keys_are_libvirts(self):
        libvirt = pytest.importorskip("libvirt")
        values = {getattr(libvirt, name) for name in dir(libvirt) if name.startswith("VIR_MIGRATE_PARAM_")}
        assert {key for _option, key in mig.PARAM_OPTIONS} <= values


class TestPlacement:
    def test_running_on_source_migrates(self):
        assert mig.placement_decision("g", "a", "running", "b", mig.ABSENT) == ("migrate", None)
        assert mig.placement_decision("g", "a", "running", "b", "shut off") == ("migrate", None)

    def test_already_on_destination(self):
        decision, message = mig.placement_decision("g", "a", "shut off", "b", "running")
        assert decision == "done"
        assert message == "g already runs on b and not on a: nothing to migrate"
        assert mig.placement_decision("g", "a", mig.ABSENT, "b", "running")[0] == "done"

    def test_active_on_both(self):
        decision, message = mig.placement_decision("g", "a", "running", "b", "paused")
        assert decision == "error"
        assert message.startswith("g is running on a and paused on b")

    def test_paused_on_source(self):
        assert mig.placement_decision("g", "a", "paused", "b", mig.ABSENT) == (
            "error", "g is paused on a: only a running domain is live-migrated; resume it first")

    def test_nowhere(self):
        assert mig.placement_decision("g", "a", "shut off", "b", mig.ABSENT) == (
            "error", "g is not running on a (shut off) nor on b (not defined): start it on the source first")

    def test_state_names(self):
        assert mig.state_name(1) == "running"
        assert mig.state_name(5) == "shut off"
        assert mig.state_name(None) == mig.ABSENT
        assert mig.state_name(42) == "state 42"

    def test_running_hosts(self):
        assert mig.running_hosts({"b": "running", "a": "shut off"}) == ["b"]
        assert mig.running_hosts({"b": "running", "a": "running"}) == ["a", "b"]


class TestWorker:
    def test_worker_keeps_result_and_error(self):
        ok = mig.Worker(lambda: "ddom")
        ok.start()
        ok.join(5)
        assert (ok.result, ok.error) == ("ddom", None)

        def boom():
            raise RuntimeError("link down")

        bad = mig.Worker(boom)
        bad.start()
        bad.join(5)
        assert isinstance(bad.error, RuntimeError) and str(bad.error) == "link down"

    def test_worker_runs_in_background(self):
        gate = threading.Event()
        worker = mig.Worker(gate.wait)
        worker.start()
        assert worker.is_alive()
        gate.set()
        worker.join(5)
        assert not worker.is_alive()


class TestShaping:
    STATS = {"type": 3, "operation": 5, "downtime": 21, "downtime_net": 20, "time_elapsed": 1003, "time_elapsed_net": 1001,
             "setup_time": 2, "data_total": 135536640, "data_processed": 28467200, "data_remaining": 0,
             "memory_total": 135536640, "memory_processed": 28467200, "memory_remaining": 0, "memory_bps": 117440512,
             "memory_dirty_rate": 1200, "memory_iteration": 3, "disk_total": 0}

    def test_completed_job(self):
        assert mig.is_completed_job(self.STATS)
        assert not mig.is_completed_job({"type": 0})
        assert not mig.is_completed_job({})
        assert not mig.is_completed_job(None)

    def test_shape_job(self):
        job = mig.shape_job(self.STATS, "source")
        assert job["downtime_ms"] == 21
        assert job["downtime_net_ms"] == 20
        assert job["total_time_ms"] == 1003
        assert job["memory_iterations"] == 3
        assert job["memory_dirty_pages_per_s"] == 1200
        assert job["read_from"] == "source"
        assert job["stats"] == self.STATS and job["stats"] is not self.STATS

    def test_shape_missing_keys_are_none(self):
        job = mig.shape_job({"type": 3, "downtime": 0}, "destination")
        assert job["downtime_ms"] == 0
        assert job["downtime_net_ms"] is None
        assert set(job) == {new for _old, new in mig.JOB_FIELDS} | {"read_from", "stats"}

    def test_versions_and_guest(self):
        assert mig.version_text(9000000) == "9.0.0"
        assert mig.version_text(7002001) == "7.2.1"
        assert mig.guest_summary("g", [1, 16777216, 16777216, 8, 0]) == {"name": "g", "vcpus": 8, "memory_mib": 16384}

    def test_progress(self):
        assert mig.progress_text({"data_total": 256 * mig.MIB, "data_processed": 12 * mig.MIB}) == "12.0 of 256.0 MiB sent"
        assert mig.progress_text({}) == ""
        assert mig.progress_text(None) == ""

    def test_timeout_message_guest_on_source(self):
        message = mig.timeout_message("g", "a", "b", mig.deadline_reason(2.0, "1.0 of 128.0 MiB sent"), {"a": "running", "b": mig.ABSENT})
        assert message == ("migration of g from a to b did not finish within 2.0 s (1.0 of 128.0 MiB sent); "
                           "the job was aborted and g is still running on a")

    def test_timeout_message_guest_elsewhere(self):
        message = mig.timeout_message("g", "a", "b", mig.deadline_reason(2.0, ""), {"a": "paused", "b": "running"})
        assert message == ("migration of g from a to b did not finish within 2.0 s; the job was aborted, "
                           "but g is not running on a alone (a: paused, b: running): check both hosts")

    def test_timeout_message_destination_that_cannot_be_asked(self):
        """Running on the source is known: the message says so, and names what could not be asked and why."""
        message = mig.timeout_message("g", "a", "b", mig.deadline_reason(2.0, ""), {"a": "running", "b": mig.UNKNOWN}, {"b": "client socket is closed"})
        assert message == ("migration of g from a to b did not finish within 2.0 s; the job was aborted and g is still running on a, "
                           "but b could not be asked whether it holds a copy (client socket is closed): check b before touching g there")
        assert "not running on a" not in message


class TestClock:
    def test_best_sample_is_smallest_delay(self):
        assert mig.best_sample([(0.010, 0.004), (0.002, 0.001), (-0.5, 0.003)]) == (0.002, 0.001)

    def test_server_result_answered(self):
        entry = mig.server_result("ntp1", [(0.0012345, 0.0003), (0.5, 0.2)], ["timeout"])
        assert entry == {"server": "ntp1", "answered": 2, "offset_ms": 1.234, "delay_ms": 0.3, "error": None}

    def test_server_result_silent(self):
        entry = mig.server_result("ntp2", [], ["No response received from ntp2.", "No response received from ntp2!"])
        assert entry == {"server": "ntp2", "answered": 0, "offset_ms": None, "delay_ms": None, "error": "No response received from ntp2!"}

    def test_choose_server(self):
        results = [mig.server_result("far", [(0.003, 0.020)], []), mig.server_result("down", [], ["x"]),
                   mig.server_result("near", [(-0.001, 0.002)], [])]
        assert mig.choose_server(results)["server"] == "near"
        assert mig.choose_server([mig.server_result("down", [], ["x"])]) is None

    def test_no_answer_message_names_servers(self):
        message = mig.no_answer_message([mig.server_result("ntp1", [], ["No response received from ntp1."]),
                                         mig.server_result("ntp2", [], [])])
        assert message == ("no NTP server answered (ntp1: No response received from ntp1.; ntp2: no answer); "
                           "check that the servers are reachable on UDP port 123 from this host")


class TestSafety:
    @pytest.mark.parametrize("overrides, expected", [
        ({"max_downtime_ms": 2000000}, []),
        ({"max_downtime_ms": 2000001}, ["max_downtime_ms must be at most 2000000, got 2000001 (QEMU's downtime-limit is at most 2000 s)"]),
        ({"max_downtime_ms": 2 ** 64}, ["max_downtime_ms must be at most 2000000, got 18446744073709551616 "
                                        "(QEMU's downtime-limit is at most 2000 s)"]),
        ({"timeout_s": float("nan")}, ["timeout_s must be a finite number, got nan"]),
        ({"timeout_s": float("inf")}, ["timeout_s must be a finite number, got inf"]),
        ({"parallel": True, "parallel_connections": 255}, []),
        ({"parallel": True, "parallel_connections": 256}, ["parallel_connections must be at most 255, got 256 "
                                                           "(QEMU's multifd-channels is at most 255)"]),
        ({"bandwidth_mib_s": 8796093022207}, []),
        ({"bandwidth_mib_s": 8796093022208}, ["bandwidth_mib_s must be at most 8796093022207, got 8796093022208 "
                                              "(libvirt's migration bandwidth limit)"]),
        ({"domain": "a/b"}, ["domain must be a libvirt domain name (no '/', no leading '.', no control characters), "
                             "but 'a/b' contains '/'"]),
        ({"migrate_uri": "tcp://x\x00"}, ["migrate_uri must not contain a NUL byte, got 'tcp://x\\x00'"]),
    ])
    def test_numbers_and_names_are_checked_before_libvirt(self, overrides, expected):
        assert mig.option_problems(params(**overrides)) == expected

    def test_an_unknown_host_stops_the_decision(self):
        assert mig.placement_decision("g", "a", "running", "b", mig.UNKNOWN) == (
            "error", "cannot tell whether g runs on b: libvirt there did not answer; nothing was changed")
        assert mig.placement_decision("g", "a", mig.UNKNOWN, "b", "running")[0] == "error"

    @pytest.mark.parametrize("placement, aborted, expected", [
        ({"a": "shut off", "b": "running"}, False, mig.MIGRATED),
        ({"a": mig.ABSENT, "b": "running"}, False, mig.MIGRATED),
        ({"a": "running", "b": mig.ABSENT}, True, mig.ABORTED),
        ({"a": "running", "b": "shut off"}, False, mig.FAILED),
        ({"a": "paused", "b": mig.ABSENT}, True, mig.ABORTED),
        ({"a": "running", "b": "paused"}, True, mig.UNKNOWN),
        ({"a": "running", "b": "running"}, False, mig.UNKNOWN),
        ({"a": "shut off", "b": "paused"}, False, mig.UNKNOWN),
        ({"a": "shut off", "b": mig.ABSENT}, False, mig.UNKNOWN),
        ({"a": "running", "b": mig.UNKNOWN}, True, mig.UNKNOWN),
        ({"a": mig.UNKNOWN, "b": "running"}, False, mig.UNKNOWN),
    ])
    def test_outcome_follows_the_placement(self, placement, aborted, expected):
        assert mig.outcome(placement, "a", "b", aborted) == expected

    def test_unknown_hosts_are_described_with_their_error(self):
        assert mig.describe_placement({"b": mig.UNKNOWN, "a": "running"}, {"b": "lost"}) == "a: running, b: unknown (lost)"

    def test_a_job_still_running_after_the_abort_is_not_called_aborted(self):
        message = mig.timeout_message("g", "a", "b", mig.deadline_reason(2.0, ""), {"a": "running", "b": "paused"}, {},
                                      {"error": None, "ended": False, "grace_s": 60.0})
        assert "the job was aborted" not in message
        assert message == ("migration of g from a to b did not finish within 2.0 s; the abort was requested, but the job did not "
                           "end within 60.0 s after it, so the migration may still be running (a: running, b: paused): check both "
                           "hosts (virsh domjobinfo g) before touching g")
