# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration pre-flight against the lab: QEMU's own verdict and the arrival of trace events.

A second, small guest (diskless, TCG, 1 vCPU, 32 MiB) holds an ivshmem-plain device, for which QEMU 7.2 keeps a
migration blocker; it is defined and started on the lab host where kae-guest does not run, and undefined after
each test. kae-guest, after the guest phase gave it its trace arguments, must pass the same pre-flight.
"""

from __future__ import annotations

import json
import re

import libvirt
import pytest

from conftest import run_ansible_playbook
from test_migrate import PLAYBOOK, adhoc_result, play_failure, running_on

BLOCKED = "kae-pf-blocked"
BLOCKED_UUID = "8d3f3c52-6a4e-4d8e-9a51-2f4f0b1c7e10"  # fixed, so that a redefinition replaces the definition
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
# QEMU's words for an ivshmem device without master=on (hw/misc/ivshmem.c), as QEMU 7.2 reports them.
IVSHMEM_REASON = "Migration is disabled when using feature 'peer mode' in device 'ivshmem'"


def blocked_xml(trace=()):
    """The blocker guest: an ivshmem-plain device on a 1 MiB RAM backend (nothing left behind in /dev/shm)."""
    args = ["-object", "memory-backend-ram,id=kaepfmem,size=1M,share=on", "-device", "ivshmem-plain,memdev=kaepfmem"]
    for pattern in trace:
        args += ["--trace", pattern]
    return ("<domain type='qemu' xmlns:qemu='%s'><name>%s</name><uuid>%s</uuid><memory unit='MiB'>32</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os><on_reboot>destroy</on_reboot>"
            "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator><controller type='usb' model='none'/>"
            "<memballoon model='none'/></devices><qemu:commandline>%s</qemu:commandline></domain>"
            % (QEMU_NS, BLOCKED, BLOCKED_UUID, "".join("<qemu:arg value='%s'/>" % arg for arg in args)))


def remove_blocked(conn):
    try:
        dom = conn.lookupByName(BLOCKED)
    except libvirt.libvirtError:
        return
    if dom.isActive():
        dom.destroy()
    dom.undefine()


@pytest.fixture
def blocked(lab, conns):
    """Factory: blocked(trace=()) defines and starts the blocker guest; returns its host. Removed after the test."""
    guest_hosts = running_on(conns, lab.guest)
    host = next((name for name in sorted(lab.hosts) if name not in guest_hosts), sorted(lab.hosts)[0])
    for conn in conns.values():
        remove_blocked(conn)

    def start(trace=()):
        conns[host].defineXML(blocked_xml(trace)).create()
        return host

    yield start
    for conn in conns.values():
        remove_blocked(conn)


def preflight(*extra):
    """The playbook's pre-flight for the blocker guest instead of kae-guest."""
    return run_ansible_playbook(PLAYBOOK, "--tags", "migration_preflight", "-e", "kae_guest=%s" % BLOCKED, *extra)


def refusal(done):
    """The pre-flight's one refusal message (the fatal line of its last task)."""
    fatal = [line for line in done.stdout.splitlines() if line.startswith("fatal:")]
    assert len(fatal) == 1, "expected exactly one failed task:\n%s" % play_failure(done)
    assert "Refuse to migrate when a pre-flight check failed" in play_failure(done)
    return json.loads(fatal[0][fatal[0].index("{"):])["msg"]


@pytest.mark.parametrize("mode", ["run", "check"])
def test_qemus_blocker_is_refused_in_its_own_words(lab, conns, blocked, mode):
    host = blocked()
    dom = conns[host].lookupByName(BLOCKED)
    domain_id = dom.ID()
    guest_hosts = running_on(conns, lab.guest)
    done = preflight(*(["--check"] if mode == "check" else []))
    assert done.returncode != 0
    message = refusal(done)
    # QEMU's reason verbatim, and the missing trace arguments as a second failed check of the same message.
    assert "2 check(s) failed, nothing was migrated" in message, message
    assert "(1) QEMU refuses to migrate %s on %s: %s" % (BLOCKED, host, IVSHMEM_REASON) in message, message
    assert re.search(r"\(2\) %s on %s: no trace event \(all_vcpus_paused, all_vcpus_prepared, vm_state_notify\) of its current "
                     r"QEMU process \(started [0-9-]+ [0-9:.]+\+0000\) is in its log" % (BLOCKED, host), message), message
    assert "neither the running QEMU nor the guest's definition has --trace arguments" in message
    # Nothing moved or restarted.
    assert running_on(conns, BLOCKED) == [host] and conns[host].lookupByName(BLOCKED).ID() == domain_id
    assert running_on(conns, lab.guest) == guest_hosts
    # libvirt itself agrees: it refuses the migration with the same words.
    with pytest.raises(libvirt.libvirtError, match=re.escape(IVSHMEM_REASON)):
        dom.migrate3(conns[next(name for name in conns if name != host)], {}, libvirt.VIR_MIGRATE_LIVE)


def test_guest_started_before_its_trace_arguments_must_restart(lab, conns, blocked, ansible_adhoc):
    host = blocked()
    # The definition gets the trace arguments while the guest runs: its QEMU does not have them.
    conns[host].defineXML(blocked_xml(trace=["vm_state_notify"]))
    result = adhoc_result(ansible_adhoc(host, "openeuler.kae.migratability_info", json.dumps(
        {"domain": BLOCKED, "checks": ["trace"], "profile": "upstream", "timeout_s": 0})))
    assert result["failed"] is False and result["go"] is False, result
    assert result["trace"]["patterns"] == [] and result["trace"]["defined_patterns"] == ["vm_state_notify"]
    assert ("the running QEMU was started without --trace arguments matching vm_state_notify (its --trace patterns: none), but "
            "the guest's definition has them (vm_state_notify): it was started before they were added; restart the guest") in result["problems"][0]
    # After a restart the trace of the new QEMU process arrives (QEMU's own verdict is not asked here).
    dom = conns[host].lookupByName(BLOCKED)
    dom.destroy()
    dom.create()
    again = adhoc_result(ansible_adhoc(host, "openeuler.kae.migratability_info", json.dumps(
        {"domain": BLOCKED, "checks": ["trace"], "profile": "upstream"})))
    assert again["go"] is True, again
    assert again["trace"]["event"]["name"] == "vm_state_notify" and again["trace"]["event"]["args"] == "running 1 reason 9 (running)"


def test_pattern_that_matches_nothing_in_this_qemu_is_named(lab, conns, blocked, ansible_adhoc):
    host = blocked(trace=["all_vcpus*", "all_vcpus_paused"])
    result = adhoc_result(ansible_adhoc(host, "openeuler.kae.migratability_info", json.dumps(
        {"domain": BLOCKED, "profile": "openeuler", "timeout_s": 0})))
    assert result["go"] is False
    assert result["problems"][0] == "QEMU refuses to migrate %s on %s: %s" % (BLOCKED, host, IVSHMEM_REASON)
    # QEMU's own answer: it has no such event; its warning for the literal name is quoted.
    assert result["trace"]["states"] == {"all_vcpus_paused": "unknown", "all_vcpus_prepared": "unknown"}
    cause = result["problems"][1]
    assert "the --trace pattern(s) all_vcpus*, all_vcpus_paused name events of the profile, but QEMU has none of them enabled" in cause
    assert "QEMU said: qemu-system-x86_64: --trace all_vcpus_paused: warning: trace event 'all_vcpus_paused' does not exist" in cause


def test_kae_guest_passes_after_the_guest_phase(lab, conns, ansible_playbook):
    done = ansible_playbook(PLAYBOOK, "--tags", "guest,migration_preflight")
    assert done.returncode == 0, play_failure(done)
    source = running_on(conns, lab.guest)
    assert len(source) == 1
    assert "QEMU 7.2" in done.stdout and "on %s: no migration blocker for %s" % (source[0], lab.guest) in done.stdout
    assert re.search(r"trace: vm_state_notify running 1 reason 9 \(running\) at \d+\.\d{6}", done.stdout), done.stdout[-3000:]
    # The monitor passthrough is visible in the guest's log, as the documentation says.
    assert "is tainted: custom-monitor" in lab.qemu_log(source[0]).read_text(errors="replace")
