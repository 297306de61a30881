# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""The one place that imports libvirt: guarded imports and connection and monitor helpers."""

from __future__ import annotations

import threading
import traceback

try:
    import libvirt
except ImportError:
    libvirt = None
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_LIBVIRT = True
    LIBVIRT_IMPORT_ERROR = None

# libvirt's QEMU-specific API (monitor passthrough) ships in the same binding, as its own module.
try:
    import libvirt_qemu
except ImportError:
    libvirt_qemu = None
    HAS_LIBVIRT_QEMU = False
    LIBVIRT_QEMU_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_LIBVIRT_QEMU = True
    LIBVIRT_QEMU_IMPORT_ERROR = None

LIBRARY_NAME = "libvirt-python (python3-libvirt)"


class LibvirtFailure(Exception):
    """A libvirt call failed; the message says what was attempted and where."""


def error_text(exc):
    """Return libvirt's own one-line message for an exception, or str(exc)."""
    getter = getattr(exc, "get_error_message", None)
    text = getter() if getter else None
    return text or str(exc)


# A remote connection whose peer stops answering (a cut link, a host gone) is closed by libvirt after about
# KEEPALIVE_INTERVAL_S * (KEEPALIVE_COUNT + 1) seconds, failing the calls waiting on it; without keepalive they
# would block until TCP gives up, many minutes later.
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
_EVENT_LOOP = []


def _run_events():
    while True:
        libvirt.virEventRunDefaultImpl()


def start_event_loop():
    """Run libvirt's default event loop in a daemon thread, once per process.

    libvirt sends keepalive messages only from an event loop, and only on connections opened after it was registered.
    """
    if _EVENT_LOOP or not HAS_LIBVIRT:
        return
    libvirt.virEventRegisterDefaultImpl()
    thread = threading.Thread(target=_run_events, name="libvirt-events", daemon=True)
    thread.start()
    _EVENT_LOOP.append(thread)


def keep_alive(conn, interval_s=KEEPALIVE_INTERVAL_S, count=KEEPALIVE_COUNT):
    """Ask libvirt to close CONN when its peer stops answering; False when the connection cannot do keepalive
    (a driver without it, or no event loop started)."""
    try:
        return conn.setKeepAlive(interval_s, count) == 0
    except libvirt.libvirtError:
        return False


def connect(uri, read_only=False):
    """Open a libvirt connection to URI, raising LibvirtFailure with the URI named."""
    if not HAS_LIBVIRT:
        raise LibvirtFailure("libvirt-python is not installed on this host")
    # libvirt prints its errors to stderr unless a handler is registered.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        if read_only:
            return libvirt.openReadOnly(uri)
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise LibvirtFailure("cannot connect to libvirt at %s: %s" % (uri, error_text(exc))) from exc


def exit_with_read(module, uri, read, read_only=False):
    """The end of a read-only module: READ(conn) over a connection to URI, closed after, as MODULE's result
    (changed=false); a connection or READ that raises LibvirtFailure fails MODULE with its message."""
    try:
        conn = connect(uri, read_only=read_only)
    except LibvirtFailure as exc:
        module.fail_json(msg=str(exc))
    try:
        result = read(conn)
    except LibvirtFailure as exc:
        module.fail_json(msg=str(exc))
    finally:
        conn.close()
    module.exit_json(**dict({"changed": False}, **result))


def host_name(conn, fallback):
    """The host name libvirt reports for CONN, or FALLBACK (for example the URI) when it cannot say."""
    try:
        return conn.getHostname()
    except libvirt.libvirtError:
        return fallback


def lookup_domain(conn, name):
    """Return the domain called NAME on CONN, or None when it is not defined there."""
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise LibvirtFailure("cannot look up domain %s on %s: %s" % (name, conn.getURI(), error_text(exc))) from exc


def qemu_monitor_command(domain, command, host):
    """Send one QMP COMMAND (JSON text) to DOMAIN's QEMU and return the reply text.

    libvirt marks the domain tainted ("custom-monitor") in its log the first time; the command must only read.
    """
    if not HAS_LIBVIRT_QEMU:
        raise LibvirtFailure("the libvirt_qemu module of libvirt-python is not installed on %s" % host)
    try:
        return libvirt_qemu.qemuMonitorCommand(domain, command, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_DEFAULT)
    except libvirt.libvirtError as exc:
        raise LibvirtFailure("cannot send %s to the QEMU monitor of %s on %s: %s" % (command, domain.name(), host, error_text(exc))) from exc
