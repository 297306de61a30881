# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Pure logic of live migration and clock offsets: option checks, libvirt flag and
parameter mapping, placement decisions, job polling decisions and result shaping.

Nothing here talks to libvirt or the network; libvirt constants are passed in (any
object with the VIR_* attributes, normally the libvirt module) so tests can use fakes.
"""

from __future__ import annotations

import threading

from ansible_collections.openeuler.kae.plugins.module_utils import _convergence
from ansible_collections.openeuler.kae.plugins.module_utils import _validate

# Boolean module options and the libvirt migration flag each one sets, in the order
# virsh prints them.
FLAG_OPTIONS = (
    ("live", "VIR_MIGRATE_LIVE"),
    ("peer2peer", "VIR_MIGRATE_PEER2PEER"),
    ("tunnelled", "VIR_MIGRATE_TUNNELLED"),
    ("persist_dest", "VIR_MIGRATE_PERSIST_DEST"),
    ("undefine_source", "VIR_MIGRATE_UNDEFINE_SOURCE"),
    ("unsafe", "VIR_MIGRATE_UNSAFE"),
    ("abort_on_error", "VIR_MIGRATE_ABORT_ON_ERROR"),
    ("auto_converge", "VIR_MIGRATE_AUTO_CONVERGE"),
    ("tls", "VIR_MIGRATE_TLS"),
    ("parallel", "VIR_MIGRATE_PARALLEL"),
)

# Module options and the virDomainMigrate3 typed parameter each one fills
# (the values of libvirt's VIR_MIGRATE_PARAM_* constants).
PARAM_OPTIONS = (
    ("migrate_uri", "migrate_uri"),
    ("destination_xml", "destination_xml"),
    ("persistent_xml", "persistent_xml"),
    ("bandwidth_mib_s", "bandwidth"),
    ("parallel_connections", "parallel.connections"),
)

# virDomainState values (stable in libvirt's public ABI) and their virsh names.
DOMAIN_STATES = {
    0: "no state",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutting down",
    5: "shut off",
    6: "crashed",
    7: "suspended",
}
ABSENT = "not defined"
# The state of a host that could not be asked (connection lost, libvirt error): never taken for ABSENT.
UNKNOWN = "unknown"
# States in which the domain's QEMU process exists on that host.
ACTIVE_STATES = ("running", "blocked", "paused", "shutting down", "suspended")

# virDomainJobType values.
JOB_NONE = 0
JOB_COMPLETED = 3

MIB = 1024 * 1024

# Upper limits of the number options, each with where it comes from. libvirt caps the bandwidth at INT64_MAX
# bytes/s in MiB/s (QEMU_DOMAIN_MIG_BANDWIDTH_MAX); QEMU's multifd-channels is a uint8 between 1 and 255.
NUMBER_LIMITS = (
    ("max_downtime_ms", True, _convergence.QEMU_MAX_DOWNTIME_MS, "QEMU's downtime-limit is at most 2000 s"),
    ("bandwidth_mib_s", True, (2 ** 63 - 1) // MIB, "libvirt's migration bandwidth limit"),
    ("parallel_connections", True, 255, "QEMU's multifd-channels is at most 255"),
    ("timeout_s", False, None, None),
    ("progress_interval_s", False, None, None),
    ("progress_timeout_s", False, None, None),
    ("completion_timeout_s_per_gib", False, None, None),
)
URI_OPTIONS = ("destination_uri", "source_uri")
TEXT_OPTIONS = ("migrate_uri", "destination_xml", "persistent_xml")

# What became of a migration, judged from where the domain runs afterwards.
MIGRATED, ABORTED, FAILED = "migrated", "aborted", "failed"

# Completed-job statistics renamed with their unit; everything else is kept under "stats".
JOB_FIELDS = (
    ("downtime", "downtime_ms"),
    ("downtime_net", "downtime_net_ms"),
    ("time_elapsed", "total_time_ms"),
    ("time_elapsed_net", "total_time_net_ms"),
    ("setup_time", "setup_time_ms"),
    ("data_total", "data_total_bytes"),
    ("data_processed", "data_processed_bytes"),
    ("data_remaining", "data_remaining_bytes"),
    ("memory_total", "memory_total_bytes"),
    ("memory_processed", "memory_processed_bytes"),
    ("memory_remaining", "memory_remaining_bytes"),
    ("memory_bps", "memory_bytes_per_s"),
    ("memory_dirty_rate", "memory_dirty_pages_per_s"),
    ("memory_iteration", "memory_iterations"),
)


def _number_problems(params):
    """One sentence per number option that is not finite and positive, or is above its limit (saying whose limit)."""
    problems = []
    for name, integer, maximum, why in NUMBER_LIMITS:
        value = params.get(name)
        if value is None:
            continue
        try:
            _validate.positive(value, name, integer=integer)
        except _validate.InputError as exc:
            problems.append(str(exc))
            continue
        if maximum is not None and value > maximum:
            problems.append("%s must be at most %d, got %s (%s)" % (name, maximum, value, why))
    return problems


def _text_problems(params):
    """One sentence per text option that holds a NUL byte or is empty, and for a domain name that cannot be a file name."""
    given = [name for name in URI_OPTIONS + TEXT_OPTIONS if params.get(name) is not None]
    checks = [("domain", _validate.domain_name)] + [(name, _validate.text) for name in given]
    problems = []
    for name, check in checks:
        try:
            check(params.get(name), name)
        except _validate.InputError as exc:
            problems.append(str(exc))
    return problems


def option_problems(params):
    """Return a list of sentences, one per inconsistent option; empty when all is well."""
    problems = _number_problems(params) + _text_problems(params)
    if problems:
        return problems
    problems = _convergence.schedule_problems(params.get("max_downtime_ms"), params.get("downtime_schedule"))
    for name in URI_OPTIONS:
        value = params.get(name) or ""
        if "://" not in value:
            problems.append("%s must be a libvirt URI such as qemu+ssh://HOST/system, got %r" % (name, value))
    if params.get("destination_uri") and params.get("destination_uri") == params.get("source_uri"):
        problems.append("destination_uri and source_uri are both %s: a domain cannot migrate to the host it runs on" % params["source_uri"])
    migrate_uri = params.get("migrate_uri")
    if migrate_uri and "://" not in migrate_uri:
        problems.append("migrate_uri must look like tcp://HOST (optionally with :PORT), got %r" % migrate_uri)
    if params.get("parallel_connections") is not None and not params.get("parallel"):
        problems.append("parallel_connections needs parallel=true (libvirt's parallel migration); set parallel: true or drop parallel_connections")
    if params.get("tunnelled"):
        if not params.get("peer2peer"):
            problems.append("tunnelled=true needs peer2peer=true: libvirt only tunnels migrations that the source libvirtd drives")
        if migrate_uri:
            problems.append("migrate_uri cannot be used with tunnelled=true: the data goes through libvirtd's own connection; drop migrate_uri")
        for other in ("parallel", "tls"):
            if params.get(other):
                problems.append("tunnelled=true cannot be combined with %s=true; choose one of them" % other)
    return problems


def migration_flags(params, constants):
    """Return (flags, names): the OR of the libvirt flags the boolean options ask for, and their option names."""
    flags = 0
    names = []
    for option, constant in FLAG_OPTIONS:
        if params.get(option):
            flags |= getattr(constants, constant)
            names.append(option)
    return flags, names


def migration_params(params):
    """Return the typed parameters for virDomainMigrate3/virDomainMigrateToURI3, leaving out unset options."""
    typed = {}
    for option, key in PARAM_OPTIONS:
        value = params.get(option)
        if value is not None and value != "":
            typed[key] = value
    return typed


def state_name(state):
    """Name of a virDomainState value; None (domain absent) gives ABSENT."""
    if state is None:
        return ABSENT
    return DOMAIN_STATES.get(state, "state %s" % state)


def placement_decision(domain, source_host, source_state, destination_host, destination_state):
    """Decide from both hosts' domain states (names) what a migration request means.

    Returns ("migrate", None), ("done", message) when the domain already runs on the
    destination only, or ("error", message).
    """
    unknown = [host for host, state in ((source_host, source_state), (destination_host, destination_state)) if state == UNKNOWN]
    if unknown:
        return "error", ("cannot tell whether %s runs on %s: libvirt there did not answer; nothing was changed"
                         % (domain, " nor on ".join(unknown)))
    src_active = source_state in ACTIVE_STATES
    dst_active = destination_state in ACTIVE_STATES
    if source_state == "running" and not dst_active:
        return "migrate", None
    if destination_state == "running" and not src_active:
        return "done", "%s already runs on %s and not on %s: nothing to migrate" % (domain, destination_host, source_host)
    if src_active and dst_active:
        return "error", ("%s is %s on %s and %s on %s: it must be active on one host only; "
                         "check both hosts before migrating" % (domain, source_state, source_host, destination_state, destination_host))
    if src_active:
        return "error", "%s is %s on %s: only a running domain is live-migrated; resume it first" % (domain, source_state, source_host)
    return "error", ("%s is not running on %s (%s) nor on %s (%s): start it on the source first"
                     % (domain, source_host, source_state, destination_host, destination_state))


def outcome(placement, source_host, destination_host, aborted):
    """What became of a migration, from where the domain is now: MIGRATED, ABORTED (when ABORTED, an abort took
    effect), FAILED, or UNKNOWN.

    MIGRATED means running on the destination and inactive on the source; ABORTED and FAILED mean active on the
    source and inactive on the destination. Anything else, a host that could not be asked included, is UNKNOWN.
    """
    src, dst = placement.get(source_host, UNKNOWN), placement.get(destination_host, UNKNOWN)
    if UNKNOWN in (src, dst):
        return UNKNOWN
    if dst == "running" and src not in ACTIVE_STATES:
        return MIGRATED
    if src in ACTIVE_STATES and dst not in ACTIVE_STATES:
        return ABORTED if aborted else FAILED
    return UNKNOWN


def running_hosts(placement):
    """Hosts of a placement dict {host: state name} where the domain is running."""
    return sorted(host for host, state in placement.items() if state == "running")


def version_text(number):
    """libvirt encodes versions as major * 1000000 + minor * 1000 + release."""
    number = int(number)
    return "%d.%d.%d" % (number // 1000000, (number // 1000) % 1000, number % 1000)


def guest_summary(name, info):
    """Shape virDomainGetInfo's [state, max KiB, KiB, vCPUs, cpu time] as the report's guest dict."""
    return {"name": name, "vcpus": int(info[3]), "memory_mib": int(info[1]) // 1024}


def is_completed_job(stats):
    """True when STATS (virDomainGetJobStats) hold a completed job's figures."""
    return bool(stats) and stats.get("type") == JOB_COMPLETED


def shape_job(stats, read_from):
    """Completed-job statistics with unit-named keys, the raw dict under "stats" and where they were read."""
    job = {new: stats.get(old) for old, new in JOB_FIELDS}
    job["read_from"] = read_from
    job["stats"] = dict(stats)
    return job


def progress_text(stats):
    """A short 'how far it got' for an active job's statistics, or '' when unknown."""
    total = stats.get("data_total") if stats else None
    processed = stats.get("data_processed") if stats else None
    if not total or processed is None:
        return ""
    return "%.1f of %.1f MiB sent" % (processed / float(MIB), total / float(MIB))


def deadline_reason(timeout_s, progress):
    """Why the migration is aborted once timeout_s passed, with how far it got (progress_text) when known."""
    return "did not finish within %s s%s" % (timeout_s, " (%s)" % progress if progress else "")


def timeout_message(domain, source_host, destination_host, reason, placement, errors=None, abort=None):
    """The failure sentence after a limit fired (REASON says which, see deadline_reason): what the abort did and where the guest now runs.

    ABORT is {"error": abortJob's error or None, "ended": whether the job ended within the grace period,
    "grace_s": that period}. Only an abortJob that succeeded and a job that ended let it say "the job was aborted".
    """
    abort = abort or {"error": None, "ended": True, "grace_s": None}
    head = "migration of %s from %s to %s %s" % (domain, source_host, destination_host, reason)
    where = describe_placement(placement, errors)
    if not abort["ended"]:
        asked = "abortJob failed (%s)" % abort["error"] if abort["error"] else "the abort was requested"
        return ("%s; %s, but the job did not end within %s s after it, so the migration may still be running (%s): "
                "check both hosts (virsh domjobinfo %s) before touching %s" % (head, asked, abort["grace_s"], where, domain, domain))
    if abort["error"]:
        head += "; abortJob failed (%s) and the job ended by itself" % abort["error"]
    else:
        head += "; the job was aborted"
    if outcome(placement, source_host, destination_host, abort["error"] is None) in (ABORTED, FAILED) and placement[source_host] == "running":
        return head + " and %s is still running on %s" % (domain, source_host)
    if placement.get(source_host) == "running" and placement.get(destination_host) == UNKNOWN:
        # Running on the source is known; only the destination could not be asked (its libvirt or link is gone).
        return head + (" and %s is still running on %s, but %s could not be asked whether it holds a copy (%s): check %s "
                       "before touching %s there" % (domain, source_host, destination_host, (errors or {}).get(destination_host, "no answer"),
                                                     destination_host, domain))
    return head + ", but %s is not running on %s alone (%s): check both hosts" % (domain, source_host, where)


def describe_placement(placement, errors=None):
    """'host-a: running, host-b: unknown (why)' for messages."""
    errors = errors or {}
    return ", ".join("%s: %s%s" % (host, placement[host], " (%s)" % errors[host] if host in errors else "") for host in sorted(placement))


class Worker(threading.Thread):
    """Runs one blocking call (the migration) so that the caller can poll and abort it."""

    def __init__(self, call):
        super().__init__(name="kae-migration", daemon=True)
        self._call = call
        self.result = None
        self.error = None

    def run(self):
        try:
            self.result = self._call()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # Handed to the polling thread, which turns it into the module's failure.
            self.error = exc


# Clock offset (NTP) ---------------------------------------------------------------

def best_sample(samples):
    """Of one server's (offset_s, delay_s) samples, the one with the smallest round-trip delay.

    NTP's own clock filter does the same: the shortest exchange has the least asymmetry.
    """
    return min(samples, key=lambda sample: sample[1])


def server_result(server, samples, errors):
    """One server's entry: its best sample in ms (or None) and how many samples answered."""
    entry = {"server": server, "answered": len(samples), "offset_ms": None, "delay_ms": None, "error": None}
    if samples:
        offset, delay = best_sample(samples)
        entry["offset_ms"] = round(offset * 1000.0, 3)
        entry["delay_ms"] = round(delay * 1000.0, 3)
    elif errors:
        entry["error"] = errors[-1]
    return entry


def choose_server(results):
    """The answering server with the smallest delay, or None when none answered."""
    answering = [entry for entry in results if entry["answered"]]
    if not answering:
        return None
    return min(answering, key=lambda entry: entry["delay_ms"])


def no_answer_message(results):
    """Failure sentence naming every server and why it did not answer."""
    details = "; ".join("%s: %s" % (entry["server"], entry["error"] or "no answer") for entry in results)
    return "no NTP server answered (%s); check that the servers are reachable on UDP port 123 from this host" % details
