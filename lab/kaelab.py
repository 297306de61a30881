# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Local KAE migration lab: ``kaelab.py up [--hosts N] [--guests M]|status|down`` (run as root).

Each lab host is a set of PID/mount/UTS/network namespaces whose PID 1 is this
script's ``init`` sub-command; killing that one process makes the kernel end
every process of the host and drop its mounts and network namespace. Hosts run
the distribution's libvirtd, virtlogd and sshd with their own configuration and
state, and talk to each other and to the controller over the bridge ``kaelab0``.
There is no KAE hardware and no PCI passthrough in the lab: each host gets a
simulated sysfs tree instead, and the guest runs under TCG.

By default the lab is two hosts (kae-lab-a, kae-lab-b) and one guest (kae-guest). ``up --hosts N --guests M``
builds a fleet: N hosts (kae-lab-a, -b, -c, ...) and M light guests (kae-fleet-1..M, a heartbeat only) spread
over them; ``up`` with another size grows or shrinks what runs, and the size is recorded in LAYOUT_FILE for
``status``, ``down`` and the lab inventory (``kaelab.py inventory``, run by inventories/lab/fleet.sh).
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
SIMSYSFS = LAB_DIR / "simsysfs.py"
STATE = Path("/var/lib/kae-lab")
SSH_DIR = STATE / "ssh"
LAB_KEY = SSH_DIR / "id_ed25519"
KNOWN_HOSTS = SSH_DIR / "known_hosts"
IMAGES = STATE / "images"
KERNEL = IMAGES / "vmlinuz"
INITRD = IMAGES / "kae-guest-initrd.img"
CHRONY_DIR = STATE / "chrony"
LOCK_FILE = STATE / "lock"
# The size `up` built ({"hosts": N, "guests": M} and the names derived from it); absent: the default lab.
LAYOUT_FILE = STATE / "layout.json"
FLEET_INITRD = IMAGES / "kae-fleet-initrd.img"

BRIDGE = "kaelab0"
PREFIX_LEN = 24
CONTROLLER_ADDR = "10.77.231.1"
CONTROLLER_NAME = "kae-lab-controller"
GUEST = "kae-guest"
GUEST_MEMORY_MIB = 192
SERIAL_LOG = "/var/log/libvirt/qemu/%s-serial.log" % GUEST
QEMU_LOG = "/var/log/libvirt/qemu/%s.log" % GUEST
MIGRATION_PORTS = (49152, 49215)
INIT_MARK = "kaelab-init"
# Host inits and players run on the system interpreter: a virtual environment rebuilt while the lab is up must not
# take the hosts down with it.
INIT_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
UUID_NAMESPACE = uuid.UUID("5b0c1f4e-7a4e-4f0e-9d55-6b61652d6c61")

# The project's one list of Debian packages (scripts/bootstrap.sh installs the same).
DEBIAN_PACKAGES = LAB_DIR.parent / "requirements" / "debian.txt"


@dataclass(frozen=True)
class Host:
    name: str
    addr: str
    veth: str

    @property
    def dir(self) -> Path:
        return STATE / "hosts" / self.name

    @property
    def sysfs(self) -> Path:
        return self.dir / "sysfs"

    @property
    def peer_veth(self) -> str:
        return self.veth + "-p"


HOST_LETTERS = "abcdefgh"
VETH_PREFIX = "kaelab-"
FIRST_HOST_OCTET = 11


def lab_host(index: int) -> Host:
    """The lab's host number INDEX (0 is kae-lab-a at 10.77.231.11): names and addresses follow from the index."""
    letter = HOST_LETTERS[index]
    return Host("kae-lab-" + letter, "10.77.231.%d" % (FIRST_HOST_OCTET + index), VETH_PREFIX + letter)


# The default lab's hosts (make demo, the lab tests).
HOSTS = (lab_host(0), lab_host(1))
HOSTS_BY_NAME = {h.name: h for h in HOSTS}
GUEST_HOME = HOSTS[0]
DAEMONS = ("virtlogd", "libvirtd", "sshd")
MIN_HOSTS, MAX_HOSTS = 2, len(HOST_LETTERS)
# Light guests: 96 MiB and 1 vCPU each under TCG; 16 of them stay well inside a 2-core machine's reach.
MAX_GUESTS = 16
FLEET_PREFIX = "kae-fleet-"
FLEET_MEMORY_MIB = 96
# The guest's memory dirtier rewrites a 32 MiB working set; a cap above what TCG can write is no cap.
MAX_DIRTY_MIB_S = 512


@dataclass(frozen=True)
class Guest:
    name: str
    home: Host
    memory_mib: int
    initrd: Path
    description: str

    @property
    def serial_log(self) -> str:
        return "/var/log/libvirt/qemu/%s-serial.log" % self.name

    def serial_on(self, host: Host) -> Path:
        """The guest's serial log of HOST, as the controller sees it."""
        return host.dir / "log-libvirt" / "qemu" / os.path.basename(self.serial_log)


@dataclass(frozen=True)
class Layout:
    """What `up` builds: the hosts and the light guests (kae-guest, on kae-lab-a, is always there too)."""
    hosts: tuple
    guests: tuple

    def describe(self) -> str:
        return "%d hosts, %d extra guests" % (len(self.hosts), len(self.guests))


def fleet_layout(hosts: int = len(HOSTS), guests: int = 0) -> Layout:
    """HOSTS hosts and GUESTS light guests; guest i runs on host i mod HOSTS, so they spread evenly beside kae-guest
    (which is on host 0) and the same size always gives the same placement."""
    members = tuple(lab_host(i) for i in range(hosts))
    extra = tuple(Guest(FLEET_PREFIX + str(i), members[i % hosts], FLEET_MEMORY_MIB, FLEET_INITRD,
                        "KAE fleet lab guest (TCG): a serial heartbeat only.") for i in range(1, guests + 1))
    return Layout(members, extra)


DEFAULT_LAYOUT = fleet_layout()


class LabError(Exception):
    """A step of the lab failed; the message says which and why."""


STARTED = time.monotonic()


def log(msg: str) -> None:
    print("kaelab: [%5.1f s] %s" % (time.monotonic() - STARTED, msg), flush=True)


def run(argv, check=True, env=None, timeout=120, cwd="/") -> subprocess.CompletedProcess:
    """Run a command with a clean environment and captured output."""
    proc = subprocess.run([str(a) for a in argv], env=env or CLEAN_ENV, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise LabError("command failed (rc=%d): %s\n%s" % (proc.returncode, " ".join(map(str, argv)), detail))
    return proc


def in_host(pid: int, argv, check=True, timeout=120) -> subprocess.CompletedProcess:
    """Run argv inside all namespaces of the host whose PID 1 is pid."""
    return run(["nsenter", "-t", pid, "-m", "-u", "-n", "-p", "--"] + list(argv), check=check, timeout=timeout)


def wait_for(what: str, predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise LabError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Processes and namespaces, found through /proc so that a killed `up` leaves nothing unfindable.

def _cmdline(pid: int) -> list:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _ppid(pid: int):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _ns_inode(pid: int, kind: str):
    try:
        return os.stat("/proc/%d/ns/%s" % (pid, kind)).st_ino
    except OSError:
        return None


def init_pid(host: Host):
    """PID (as seen by the controller) of the host's namespace init, or None."""
    for pid in _pids():
        argv = _cmdline(pid)
        if INIT_MARK in argv and argv[-1] == host.name and "unshare" not in os.path.basename(argv[0]) \
                and _ns_inode(pid, "pid") != _ns_inode(os.getpid(), "pid") and _alive(pid):
            return pid
    return None


def marked_pids():
    """Every process that carries the lab marker: namespace inits and the unshare processes above them."""
    return [pid for pid in _pids() if pid != os.getpid() and INIT_MARK in _cmdline(pid)]


def host_processes(pid: int) -> dict:
    """Map command name -> [pids] of the processes inside the host whose init is pid."""
    ns = _ns_inode(pid, "pid")
    procs = {}
    for other in _pids():
        if ns is None or _ns_inode(other, "pid") != ns or not _alive(other):
            continue
        try:
            with open("/proc/%d/comm" % other) as f:
                procs.setdefault(f.read().strip(), []).append(other)
        except OSError:
            continue
    return procs


def chrony_pids():
    conf = str(CHRONY_DIR / "chrony.conf")
    return [pid for pid in _pids() if conf in _cmdline(pid) and _alive(pid)]


def ns_init(name: str, player_root=None) -> None:
    """PID 1 of a lab host: reap orphans, keep the sysfs kernel player running; exit on TERM/INT/HUP,
    which ends the whole host."""
    def stop(signum, frame):
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    socket.sethostname(name)
    player = start_player(player_root) if player_root else None
    while True:
        try:
            pid, _status = os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.5)
            continue
        if player is not None and pid == player:
            time.sleep(1)  # a player that keeps failing must not spin
            player = start_player(player_root)


def start_player(root: str):
    """The simulated kernel of the host's KAE sysfs tree (lab/simsysfs.py play): applies sriov_numvfs and
    bind/unbind writes as the kernel would."""
    try:
        return subprocess.Popen([sys.executable, str(SIMSYSFS), "play", root],  # pylint: disable=consider-using-with
                                stdin=subprocess.DEVNULL, cwd="/").pid
    except OSError as exc:  # the checkout moved away: the host lives on without a player
        print("kaelab init: cannot start the sysfs player: %s" % exc, flush=True)
        return None


# ---------------------------------------------------------------------------
# Packages and files shared by both hosts.

def debian_packages() -> list:
    """Package names from requirements/debian.txt: one a line, text after '#' a comment."""
    names = (line.split("#", 1)[0].strip() for line in DEBIAN_PACKAGES.read_text().splitlines())
    return [name for name in names if name]


def ensure_packages() -> None:
    missing = []
    for pkg in debian_packages():
        proc = run(["dpkg-query", "-W", "-f=${Status}", pkg], check=False)
        if "install ok installed" not in proc.stdout:
            missing.append(pkg)
    if not missing:
        return
    log("installing Debian packages: " + " ".join(missing))
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:
        # Package scripts must not start the distribution's daemons on the controller.
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = dict(CLEAN_ENV, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update"], env=env, timeout=600)
        run(["apt-get", "install", "-y", "--no-install-recommends"] + missing, env=env, timeout=1200)
    finally:
        if own_policy:
            policy.unlink()


def ensure_keys(hosts=HOSTS) -> None:
    """Lab root key (controller and hosts) and one pinned host key per host; kept across up/down."""
    SSH_DIR.mkdir(parents=True, exist_ok=True)
    SSH_DIR.chmod(0o700)
    if not LAB_KEY.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@kae-lab", "-f", LAB_KEY])
    lines = []
    for host in hosts:
        key = SSH_DIR / ("%s_host_ed25519_key" % host.name)
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", key])
        pub = Path(str(key) + ".pub").read_text().split()
        lines.append("%s,%s %s %s\n" % (host.name, host.addr, pub[0], pub[1]))
    KNOWN_HOSTS.write_text("".join(lines))


def share_host_names(hosts) -> None:
    """Every host of HOSTS names and trusts every other: the shared /etc/hosts and each running host's known_hosts.

    Both are written in place (same inode), since the hosts see them through bind mounts.
    """
    (STATE / "etc-hosts").write_text(etc_hosts_text(hosts))
    for host in hosts:
        known = host.dir / "root-home" / ".ssh" / "known_hosts"
        if known.parent.is_dir():
            known.write_text(KNOWN_HOSTS.read_text())


def etc_hosts_text(hosts=HOSTS) -> str:
    lines = ["127.0.0.1\tlocalhost", "%s\t%s" % (CONTROLLER_ADDR, CONTROLLER_NAME)]
    lines += ["%s\t%s" % (h.addr, h.name) for h in hosts]
    return "\n".join(lines) + "\n"


def kernel_package() -> str:
    """Name of the versioned cloud kernel package the installed distribution's meta-package points at."""
    proc = run(["apt-cache", "depends", "linux-image-cloud-amd64"])
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("Depends: linux-image-"):
            return line.split()[1]
    raise LabError("cannot resolve the cloud kernel package from `apt-cache depends linux-image-cloud-amd64`")


def kernel_deb() -> Path:
    """The downloaded guest kernel package (its modules go into the main guest's initramfs)."""
    found = sorted((IMAGES / "debs").glob("linux-image-*.deb"))
    if not found:
        raise LabError("no guest kernel package under %s: remove %s and run up again to download it" % (IMAGES / "debs", KERNEL))
    return found[-1]


def ensure_kernel() -> None:
    if KERNEL.exists():
        return
    debs = IMAGES / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    pkg = kernel_package()
    log("downloading guest kernel " + pkg)
    # apt-get download writes into its working directory; stale package lists need an update first.
    if run(["apt-get", "download", pkg], check=False, timeout=600, cwd=debs).returncode != 0:
        run(["apt-get", "update"], timeout=600)
        run(["apt-get", "download", pkg], timeout=600, cwd=debs)
    deb = kernel_deb()
    with tempfile.TemporaryDirectory(dir=IMAGES) as tmp:
        run(["dpkg-deb", "-x", deb, tmp])
        vmlinuz = sorted(Path(tmp, "boot").glob("vmlinuz-*"))
        if not vmlinuz:
            raise LabError("%s holds no boot/vmlinuz-*" % deb)
        part = KERNEL.with_suffix(".part")
        shutil.copyfile(vmlinuz[0], part)
        part.chmod(0o644)
        part.rename(KERNEL)


def _guestnet():
    """lab/guestnet.py as a module (the lab directory is no package)."""
    sys.path.insert(0, str(LAB_DIR))
    try:
        import guestnet  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.pop(0)
    return guestnet


def heartbeat(interval_us: int) -> str:
    """The /init lines that write `kae-heartbeat seq=N uptime=S` to the serial console every INTERVAL_US, forever."""
    return r"""n=0
while :; do
  n=$((n + 1))
  read up idle < /proc/uptime
  echo "kae-heartbeat seq=$n uptime=$up" > /dev/ttyS0
  usleep %d
done
""" % interval_us


GUEST_INIT = r"""#!/bin/busybox sh
# kae-guest /init: memory dirtier + compression load + heartbeat on the serial console.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o size=64m tmpfs /tmp
echo "4 4 1 7" > /proc/sys/kernel/printk
hostname kae-guest
""" + _guestnet().init_lines(PREFIX_LEN) + r"""dd if=/dev/urandom of=/tmp/seed bs=64k count=128 2>/dev/null
# Both load loops run at nice 10 so that the heartbeat keeps its cadence.
# Memory dirtier: keeps rewriting 32 MiB of guest RAM (tmpfs pages), so migration always has dirty pages. As fast as
# it can, unless kae_dirty_mib_s=N on the kernel command line caps it at about N MiB/s (N/4 MiB every 250 ms; 0: none).
# The default one writes the same 4 MiB of the seed at the same places (the same content again); the capped one
# starts each write at another place of the 8 MiB seed, so every page it writes gets new content, as a real
# workload's do (QEMU's page sampling counts only pages whose content changed).
rate=$(sed -n 's/.*kae_dirty_mib_s=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -z "$rate" ]; then
sh -c 'renice -n 10 $$ >/dev/null; i=0
  while :; do dd if=/tmp/seed of=/tmp/dirty bs=64k count=64 seek=$(( (i % 8) * 64 )) conv=notrunc 2>/dev/null; i=$((i + 1)); done' &
elif [ "$rate" -gt 0 ]; then
sh -c 'renice -n 10 $$ >/dev/null; off=0; from=0
  while :; do
    left=$(( $0 * 4 ))
    while [ $left -gt 0 ]; do
      n=$(( left > 64 ? 64 : left ))
      dd if=/tmp/seed of=/tmp/dirty bs=64k count=$n skip=$from seek=$off conv=notrunc 2>/dev/null
      off=$(( (off + n) % 448 )); left=$(( left - n )); from=$(( (from + 23) % 64 ))
    done
    usleep 250000
  done' "$rate" &
fi
# Stand-in for kaezip_perf: deflate in a loop.
sh -c 'renice -n 10 $$ >/dev/null; while :; do gzip -c /tmp/seed > /dev/null; done' &
""" + heartbeat(150000)


FLEET_INIT = r"""#!/bin/busybox sh
# kae-fleet guest /init: a heartbeat on the serial console and nothing else, so that many fit on a small machine.
/bin/busybox --install -s /bin
mount -t proc proc /proc
echo "4 4 1 7" > /proc/sys/kernel/printk
""" + heartbeat(500000)


def _cpio_newc(entries) -> bytes:
    """A newc cpio archive from (name, mode, data, rdev_major, rdev_minor) tuples; no cpio tool or mknod needed."""
    out = io.BytesIO()
    for ino, (name, mode, data, major, minor) in enumerate(entries + [("TRAILER!!!", 0, b"", 0, 0)], start=1):
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(name) + 1, 0)
        out.write(b"070701" + b"".join(b"%08X" % v for v in fields) + name.encode() + b"\0")
        out.write(b"\0" * (-out.tell() % 4))
        out.write(data)
        out.write(b"\0" * (-out.tell() % 4))
    return out.getvalue()


def ensure_initrd(path: Path, init: str, modules=()) -> None:
    """A busybox-static initramfs at PATH whose /init is INIT, with MODULES ((file name, bytes)) in /lib/modules
    (rewritten only when it differs)."""
    busybox = Path("/bin/busybox").read_bytes()
    entries = [(d, 0o040755, b"", 0, 0) for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules")]
    entries += [("lib/modules/" + name, 0o100644, data, 0, 0) for name, data in modules]
    entries += [
        ("dev/console", 0o020600, b"", 5, 1),
        ("dev/ttyS0", 0o020660, b"", 4, 64),
        ("bin/busybox", 0o100755, busybox, 0, 0),
        ("init", 0o100755, init.encode(), 0, 0),
    ]
    data = gzip.compress(_cpio_newc(entries), mtime=0)
    if path.exists() and path.read_bytes() == data:
        return
    part = path.with_suffix(".part")
    part.write_bytes(data)
    part.chmod(0o644)
    part.rename(path)


def ensure_main_initrd() -> None:
    """The main guest's initramfs with its network modules (every initramfs write of it goes through here: one
    without the modules boots a guest with no NIC)."""
    deb = kernel_deb()
    ensure_initrd(INITRD, GUEST_INIT, modules=_guestnet().net_modules(deb, IMAGES / ("net-modules-" + deb.stem)))


MAIN_GUEST = Guest(GUEST, GUEST_HOME, GUEST_MEMORY_MIB, INITRD,
                   "KAE lab guest (TCG): memory dirtier, gzip load, serial heartbeat. No KAE VF: passthrough cannot exist in the lab.")


def guest_xml(guest: Guest = MAIN_GUEST) -> str:
    # No --trace arguments: the guest phase of playbooks/kae_migrate.yml (openeuler.kae.guest) sets them. No VF either:
    # the guest role records the VFs it chooses in the domain's <metadata><kae:vfs> (lab hosts only).
    return """<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <description>{description}</description>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet loglevel=3 panic=-1</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'>
      <source path='{serial}' append='on'/>
      <target port='0'/>
    </serial>
{nic}    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
""".format(name=guest.name, uuid=uuid.uuid5(UUID_NAMESPACE, guest.name), description=guest.description,
           mem=guest.memory_mib, kernel=KERNEL, initrd=guest.initrd, serial=guest.serial_log,
           nic=_guestnet().interface_xml() if guest == MAIN_GUEST else "")


# ---------------------------------------------------------------------------
# One host.

def libvirtd_conf(host: Host) -> str:
    return """# kae-lab host {name}
host_uuid = "{uuid}"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
""".format(name=host.name, uuid=uuid.uuid5(UUID_NAMESPACE, host.name))


QEMU_CONF = """# kae-lab: no cgroups (both hosts share the machine's cgroup tree), no security driver,
# QEMU runs as root (each host shares the machine's /dev and files), logs through virtlogd.
user = "root"
group = "root"
dynamic_ownership = 0
cgroup_controllers = [ ]
security_driver = "none"
migration_port_min = {0}
migration_port_max = {1}
stdio_handler = "logd"
""".format(*MIGRATION_PORTS)


def sshd_config(host: Host) -> str:
    return """# kae-lab host {name}: key authentication only, on the lab address.
ListenAddress {addr}
HostKey {key}
PidFile /run/sshd.pid
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile /root/.ssh/authorized_keys
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
""".format(name=host.name, addr=host.addr, key=SSH_DIR / ("%s_host_ed25519_key" % host.name))


SSH_CLIENT_CONFIG = """Host *
    BatchMode yes
    StrictHostKeyChecking yes
    UserKnownHostsFile /root/.ssh/known_hosts
    IdentityFile /root/.ssh/id_ed25519
"""

# Per-host copies mounted over the machine's paths: (directory under the host dir, mount point).
BIND_DIRS = (
    ("etc-libvirt", "/etc/libvirt"),
    ("lib-libvirt", "/var/lib/libvirt"),
    ("log-libvirt", "/var/log/libvirt"),
    ("cache-libvirt", "/var/cache/libvirt"),
    # Root's own home (with .ssh): the machine's dotfiles (shell start-up, tool caches) stay out of the hosts.
    ("root-home", "/root"),
)


def prepare_host_dir(host: Host) -> None:
    """Fresh per-host state: libvirt config and state copies, root's home with its ssh files, sshd config."""
    if host.dir.exists():
        shutil.rmtree(host.dir)
    host.dir.mkdir(parents=True)
    for sub, target in BIND_DIRS:
        if sub != "root-home":
            shutil.copytree(target, host.dir / sub, symlinks=True)
    etc = host.dir / "etc-libvirt"
    for autostart in (etc / "qemu" / "networks" / "autostart").glob("*"):
        autostart.unlink()  # no default network (dnsmasq) inside lab hosts
    (etc / "libvirtd.conf").write_text(libvirtd_conf(host))
    (etc / "qemu.conf").write_text(QEMU_CONF)
    for stale in (host.dir / "log-libvirt" / "qemu").glob("*"):
        stale.unlink()
    home = host.dir / "root-home"
    shutil.copytree("/etc/skel", home, symlinks=True)
    home.chmod(0o700)
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700)
    shutil.copyfile(LAB_KEY, ssh / "id_ed25519")
    (ssh / "id_ed25519").chmod(0o600)
    shutil.copyfile(str(LAB_KEY) + ".pub", ssh / "id_ed25519.pub")
    shutil.copyfile(str(LAB_KEY) + ".pub", ssh / "authorized_keys")
    shutil.copyfile(KNOWN_HOSTS, ssh / "known_hosts")
    (ssh / "config").write_text(SSH_CLIENT_CONFIG)
    (host.dir / "hostname").write_text(host.name + "\n")
    (host.dir / "sshd_config").write_text(sshd_config(host))
    build_sysfs(host)


def _simsysfs():
    """lab/simsysfs.py as a module (the lab directory is no package)."""
    sys.path.insert(0, str(LAB_DIR))
    try:
        import simsysfs  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.pop(0)
    return simsysfs


def build_sysfs(host: Host) -> None:
    """Simulated Kunpeng 920 KAE sysfs tree of the host (lab/simsysfs.py): ZIP, SEC, HPRE PFs with VFs, and the lab
    marker that makes the collection read the VFs a guest holds from its <metadata><kae:vfs>."""
    _simsysfs().build(str(host.sysfs), lab_marker=True)


def mark_sysfs(host: Host) -> None:
    """Give a tree built before the lab marker existed its marker."""
    if host.sysfs.is_dir():
        _simsysfs().mark(str(host.sysfs))


def spawn_host(host: Host) -> int:
    """Start the host's namespaces; return the PID of its init as seen from the controller."""
    init = [INIT_PYTHON, str(Path(__file__).resolve()), "init", INIT_MARK, "--player", str(host.sysfs), host.name]
    logf = open(host.dir / "init.log", "ab")  # pylint: disable=consider-using-with
    proc = subprocess.Popen(  # pylint: disable=consider-using-with
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--mount", "--uts", "--net",
         "--propagation", "private"] + init,
        stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=CLEAN_ENV, cwd="/",
        start_new_session=True)
    logf.close()
    children = "/proc/%d/task/%d/children" % (proc.pid, proc.pid)

    def child():
        if proc.poll() is not None:
            raise LabError("namespace init of %s exited with %s; see %s"
                           % (host.name, proc.returncode, host.dir / "init.log"))
        try:
            with open(children) as f:
                pids = f.read().split()
        except OSError:
            return None
        return int(pids[0]) if pids else None

    pid = wait_for("the namespace init of " + host.name, child, 10)
    # The init is only ready once it has execed into Python and set the hostname.
    wait_for("init of %s to start" % host.name, lambda: INIT_MARK in _cmdline(pid), 10)
    return pid


def mount_host(host: Host, pid: int) -> None:
    mnt = ["nsenter", "-t", pid, "-m", "--"]
    run(mnt + ["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"])
    run(mnt + ["mkdir", "-p", "/run/libvirt", "/run/lock", "/run/sshd"])
    for sub, target in BIND_DIRS:
        run(mnt + ["mount", "--bind", host.dir / sub, target])
    run(mnt + ["mount", "--bind", host.dir / "hostname", "/etc/hostname"])
    run(mnt + ["mount", "--bind", STATE / "etc-hosts", "/etc/hosts"])


def network_host(host: Host, pid: int) -> None:
    run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", host.peer_veth])
    run(["ip", "link", "set", host.peer_veth, "netns", pid])
    run(["ip", "link", "set", host.veth, "master", BRIDGE, "up"])
    net = ["nsenter", "-t", pid, "-n", "--", "ip"]
    run(net + ["link", "set", "lo", "up"])
    run(net + ["link", "set", host.peer_veth, "name", "eth0"])
    run(net + ["addr", "add", "%s/%d" % (host.addr, PREFIX_LEN), "dev", "eth0"])
    run(net + ["link", "set", "eth0", "up"])
    guest_link_up(host, pid)


def guest_link_up(host: Host, pid: int) -> None:
    """The host's bridge for its guests and its link to the lab bridge (lab/guestnet.py), created when missing."""
    for argv in _guestnet().host_link_commands(pid, host.veth, BRIDGE, _link_exists):
        run(argv)


def start_daemons(host: Host, pid: int) -> list:
    """virtlogd, libvirtd and sshd, each started only if not already running in the host; returns those started.
    Does not wait for them (wait_daemons), so that both hosts' libvirtd start up side by side."""
    running = host_processes(pid)
    commands = {
        "virtlogd": ["/usr/sbin/virtlogd", "-d"],
        "libvirtd": ["/usr/sbin/libvirtd", "-d"],
        "sshd": ["/usr/sbin/sshd", "-f", host.dir / "sshd_config"],
    }
    started = [name for name in DAEMONS if name not in running]
    for name in started:
        in_host(pid, commands[name])
    return started


def wait_daemons(host: Host, pid: int) -> None:
    sock = "/proc/%d/root/run/libvirt/libvirt-sock" % pid
    wait_for("libvirtd of " + host.name, lambda: os.path.exists(sock), 30)
    wait_for("sshd of " + host.name, lambda: _port_open(host.addr, 22), 30)


def _port_open(addr: str, port: int) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=0.5):
            return True
    except OSError:
        return False


def virsh(pid: int, *args, check=True) -> subprocess.CompletedProcess:
    return in_host(pid, ["virsh", "-q", "-c", "qemu:///system"] + list(args), check=check, timeout=60)


def guest_state(pid: int, name: str = GUEST) -> str:
    proc = virsh(pid, "domstate", name, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "absent"


def domain_states(pid: int) -> dict:
    """{domain name: state} of every domain libvirtd of the host knows (one virsh call)."""
    states = {}
    for line in virsh(pid, "list", "--all", check=False).stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            states[fields[1]] = " ".join(fields[2:])
    return states


# ---------------------------------------------------------------------------
# Controller side: bridge and NTP server.

def bridge_up() -> None:
    if run(["ip", "link", "show", BRIDGE], check=False).returncode != 0:
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    addrs = run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE]).stdout
    if CONTROLLER_ADDR + "/" not in addrs:
        run(["ip", "addr", "add", "%s/%d" % (CONTROLLER_ADDR, PREFIX_LEN), "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


CHRONY_CONF = """# kae-lab NTP server: answers on {addr} from the local clock and never adjusts the
# machine clock (chronyd runs with -x; no makestep, no rtcsync).
bindaddress {addr}
allow {net}
local stratum 8
pidfile {dir}/chronyd.pid
bindcmdaddress {dir}/chronyd.sock
cmdport 0
driftfile {dir}/chrony.drift
"""


def chrony_up() -> None:
    if chrony_pids():
        return
    CHRONY_DIR.mkdir(parents=True, exist_ok=True)
    CHRONY_DIR.chmod(0o750)
    conf = CHRONY_DIR / "chrony.conf"
    # A killed chronyd may linger as a zombie until its new parent reaps it; its PID in the pid file
    # would make the new chronyd refuse to start.
    (CHRONY_DIR / "chronyd.pid").unlink(missing_ok=True)
    conf.write_text(CHRONY_CONF.format(addr=CONTROLLER_ADDR, net="10.77.231.0/%d" % PREFIX_LEN, dir=CHRONY_DIR))
    run(["chronyd", "-x", "-u", "root", "-f", conf])
    wait_for("chronyd", chrony_pids, 10)


# ---------------------------------------------------------------------------
# Faults for the lab's fault tests (tests/lab/test_faults.py). Each acts on the lab's own hosts and NTP server
# only; `up` (repair) restarts a stopped daemon or NTP server, and link_up puts a cut link back.

def stop_daemon(host: Host, name: str) -> list:
    """SIGKILL every process called NAME (one of DAEMONS) in HOST, the daemon and its children alike (for sshd:
    the listener and every session, so that no ssh multiplexing master keeps the host reachable).
    Returns the PIDs killed."""
    if name not in DAEMONS:
        raise LabError("%s is not a lab daemon (one of %s)" % (name, ", ".join(DAEMONS)))
    pid = init_pid(host)
    if pid is None:
        raise LabError("%s is down" % host.name)
    victims = host_processes(pid).get(name, [])
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for("%s of %s to exit" % (name, host.name), lambda: not any(_alive(v) for v in victims), 10)
    return victims


def link_down(host: Host) -> None:
    """Cut HOST off the lab network: its veth on the bridge goes down, so packets to and from it are dropped
    (no reset: TCP connections stall as on a pulled cable)."""
    run(["ip", "link", "set", host.veth, "down"])


def link_up(host: Host) -> None:
    """Put HOST back on the lab network after link_down."""
    run(["ip", "link", "set", host.veth, "up"])


def link_is_up(host: Host) -> bool:
    """Whether HOST's veth on the bridge is administratively up."""
    return _link_up(host.veth)


def _link_up(name: str) -> bool:
    flags = run(["ip", "-o", "link", "show", name], check=False).stdout
    return ",UP" in flags or "<UP" in flags


def stop_ntp() -> list:
    """SIGKILL the lab's NTP server (chronyd); `up` or chrony_up starts it again. Returns the PIDs killed."""
    victims = chrony_pids()
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for("the NTP server to exit", lambda: not chrony_pids(), 10)
    return victims


# ---------------------------------------------------------------------------
# The lab's size: recorded by `up`, read by status, down and the inventory.

def recorded_layout() -> Layout:
    """The layout `up` last built; the default lab when none is recorded (or the record cannot be read)."""
    try:
        size = json.loads(LAYOUT_FILE.read_text())
        return fleet_layout(int(size["hosts"]), int(size["guests"]))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return DEFAULT_LAYOUT


def record_layout(layout: Layout) -> None:
    """Write LAYOUT_FILE: the size and, for readers that do not load this script, the names it gives."""
    record = {
        "hosts": len(layout.hosts),
        "guests": len(layout.guests),
        "members": [{"name": h.name, "addr": h.addr, "sysfs": str(h.sysfs)} for h in layout.hosts],
        "guest_homes": dict([(GUEST, GUEST_HOME.name)] + [(g.name, g.home.name) for g in layout.guests]),
    }
    part = LAYOUT_FILE.with_suffix(".part")
    part.write_text(json.dumps(record, indent=2) + "\n")
    part.rename(LAYOUT_FILE)


def lab_guests(layout: Layout) -> tuple:
    return (MAIN_GUEST,) + layout.guests


# ---------------------------------------------------------------------------
# Sub-commands.

def host_health(host: Host, layout: Layout = DEFAULT_LAYOUT) -> dict:
    pid = init_pid(host)
    info = {"name": host.name, "addr": host.addr, "init": pid, "daemons": {}, "guest": "unknown", "guests": {}, "ok": False}
    if pid is None:
        return info
    procs = host_processes(pid)
    # Daemons are the init's children; their per-connection children (sshd sessions) are not daemons.
    info["daemons"] = {name: [p for p in procs.get(name, []) if _ppid(p) == pid] for name in DAEMONS}
    # The player runs from the checkout that built the host, which may be another one than this script's.
    info["player"] = [p for pids in procs.values() for p in pids if "play" in _cmdline(p)
                      and any(arg.endswith("/" + SIMSYSFS.name) for arg in _cmdline(p))]
    info["namespaces"] = {kind: _ns_inode(pid, kind) for kind in ("pid", "mnt", "uts", "net")}
    addr = run(["nsenter", "-t", pid, "-n", "--", "ip", "-o", "-4", "addr", "show", "dev", "eth0"], check=False)
    info["addr_ok"] = (host.addr + "/") in addr.stdout
    info["link_ok"] = link_is_up(host)
    info["guest_link_ok"] = _link_up(_guestnet().controller_link(host.veth))
    info["ok"] = all(info["daemons"].values()) and info["addr_ok"] and info["link_ok"]
    if info["daemons"].get("libvirtd"):
        states = domain_states(pid)
        info["guests"] = {g.name: states.get(g.name, "absent") for g in lab_guests(layout)}
        info["guest"] = info["guests"][GUEST]
    return info


def lab_links() -> list:
    """The lab's veth ends left in the root namespace, whatever size built them."""
    try:
        return sorted(name for name in os.listdir("/sys/class/net") if name.startswith(VETH_PREFIX))
    except OSError:
        return []


def lab_health(layout: Layout = None) -> dict:
    layout = layout or recorded_layout()
    bridge = run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE], check=False)
    health = {
        "layout": layout,
        "bridge": bridge.returncode == 0 and (CONTROLLER_ADDR + "/") in bridge.stdout,
        "chrony": chrony_pids(),
        "hosts": [host_health(h, layout) for h in layout.hosts],
    }
    health["up"] = health["bridge"] and bool(health["chrony"]) and all(h["ok"] for h in health["hosts"])
    health["anything"] = health["bridge"] or bool(health["chrony"]) or bool(marked_pids()) or bool(lab_links())
    return health


def _link_exists(name: str) -> bool:
    return os.path.exists("/sys/class/net/" + name)


def running_on(health: dict, name: str) -> list:
    return [h["name"] for h in health["hosts"] if h["guests"].get(name) == "running"]


def start_guest(guest: Guest, xml_text: str = "") -> int:
    """Define GUEST on its home host when it is not defined there (always, with XML_TEXT as its definition), start it;
    returns its serial log's size before."""
    pid = init_pid(guest.home)
    xml = STATE / ("%s.xml" % guest.name)
    xml.write_text(xml_text or guest_xml(guest))
    if xml_text or guest_state(pid, guest.name) == "absent":
        virsh(pid, "define", xml)
    serial = guest.serial_on(guest.home)
    offset = serial.stat().st_size if serial.exists() else 0
    virsh(pid, "start", guest.name)
    return offset


def renew_main_guest(health: dict) -> None:
    """A main guest defined or started before it had its NIC is removed from every host, so that ensure_guests
    defines it again with the NIC on its home host (as a lab built from scratch would)."""
    mac = _guestnet().GUEST_MAC
    stale = [host for info, host in zip(health["hosts"], health["layout"].hosts)
             if GUEST in info["guests"] and info["guests"][GUEST] != "absent"
             and mac not in virsh(info["init"], "dumpxml", GUEST, check=False).stdout]
    if stale:
        log("%s has no NIC on %s; defining it again" % (GUEST, ", ".join(h.name for h in stale)))
        remove_guests([GUEST], health["layout"].hosts)


def _heartbeat_after(serial: Path, offset: int) -> bool:
    try:
        with open(serial, "rb") as f:
            f.seek(offset)
            return b"kae-heartbeat" in f.read()
    except OSError:
        return False


def ensure_guests(layout: Layout, health: dict) -> list:
    """Start every guest of LAYOUT that runs on no lab host on its home host, then wait for the first heartbeat of
    each (they boot side by side). Returns the names started."""
    started = {}
    for guest in lab_guests(layout):
        if not running_on(health, guest.name):
            started[guest] = start_guest(guest)
    for guest, offset in started.items():
        serial = guest.serial_on(guest.home)
        wait_for("the first heartbeat of %s in %s" % (guest.name, serial), lambda: _heartbeat_after(serial, offset), 120, 0.2)
        log("started %s on %s" % (guest.name, guest.home.name))
    return [guest.name for guest in started]


def with_dirty_rate(xml: str, mib_s) -> str:
    """The guest XML with kae_dirty_mib_s=MIB_S on its kernel command line, read by its /init; MIB_S None: unchanged
    (the dirtier runs as fast as it can)."""
    if mib_s is None:
        return xml
    return xml.replace("</cmdline>", " kae_dirty_mib_s=%d</cmdline>" % mib_s, 1)


def restart_main_guest(layout: Layout, mib_s) -> str:
    """Stop kae-guest wherever it runs and start it again on its home host, its memory dirtier capped at MIB_S MiB/s
    (None: as fast as it can, the default). Returns the host it runs on."""
    ensure_main_initrd()
    by_name = {h.name: h for h in layout.hosts}
    for name in running_on(lab_health(layout), GUEST):
        virsh(init_pid(by_name[name]), "destroy", GUEST)
    offset = start_guest(MAIN_GUEST, with_dirty_rate(guest_xml(MAIN_GUEST), mib_s))
    serial = MAIN_GUEST.serial_on(MAIN_GUEST.home)
    wait_for("the first heartbeat of %s in %s" % (GUEST, serial), lambda: _heartbeat_after(serial, offset), 120, 0.2)
    return MAIN_GUEST.home.name


def remove_guests(names, hosts) -> None:
    """Power off and undefine the domains NAMES on every host of HOSTS (running or only defined)."""
    for host in hosts:
        pid = init_pid(host)
        if pid is None:
            continue
        states = domain_states(pid)
        for name in names:
            if states.get(name, "shut off") != "shut off":
                virsh(pid, "destroy", name, check=False)
            if name in states:
                virsh(pid, "undefine", name, check=False)
                log("removed %s from %s" % (name, host.name))


def remove_host(host: Host) -> None:
    """End HOST (one SIGKILL to its init ends its namespaces) and delete its veth; its directory stays (logs)."""
    pid = init_pid(host)
    if pid is not None:
        namespace = _ns_inode(pid, "pid")
        os.kill(pid, signal.SIGKILL)
        wait_for("the processes of %s to exit" % host.name,
                 lambda: not any(_alive(p) and _ns_inode(p, "pid") == namespace for p in _pids()), 30)
    for link in (host.veth, host.peer_veth, _guestnet().controller_link(host.veth)):
        if _link_exists(link):
            run(["ip", "link", "del", link], check=False)
    forget_neighbour(host)


def forget_neighbour(host: Host) -> None:
    """Drop the controller's ARP entry for HOST's address: an entry left from a removed host (FAILED, or the old MAC)
    would keep a host built again at that address unreachable until it ages out, half a minute or more."""
    if _link_exists(BRIDGE):
        run(["ip", "neigh", "flush", "to", host.addr, "dev", BRIDGE], check=False)


def remove_strays(layout: Layout) -> list:
    """End the lab hosts beyond LAYOUT's that still run (left by an `up` that failed while growing the lab); returns
    their names."""
    strays = [lab_host(index) for index in range(len(layout.hosts), MAX_HOSTS)]
    strays = [host for host in strays if init_pid(host) is not None or _link_exists(host.veth)]
    for host in strays:
        remove_host(host)
        log("removed %s, left over from an earlier size" % host.name)
    return [host.name for host in strays]


def add_hosts(hosts) -> None:
    """Build HOSTS from scratch (whatever is left of one is removed first) and wait for their daemons."""
    pids = {}
    for host in hosts:
        remove_host(host)
        prepare_host_dir(host)
        pids[host] = spawn_host(host)
        mount_host(host, pids[host])
        network_host(host, pids[host])
        forget_neighbour(host)
        start_daemons(host, pids[host])
    for host in hosts:
        wait_daemons(host, pids[host])
        log("%s up: init pid %d, %s" % (host.name, pids[host], host.addr))


def resize(current: Layout, target: Layout) -> None:
    """Grow or shrink a running lab from CURRENT to TARGET. Hosts and guests both layouts share stay as they are; a
    change of the host count rebuilds the light guests, because their homes follow from it."""
    names = [h.name for h in target.hosts]
    gone = [h for h in current.hosts if h.name not in names]
    new = [h for h in target.hosts if h.name not in [c.name for c in current.hosts]]
    kept = [g.name for g in target.guests] if len(current.hosts) == len(target.hosts) else []
    remove_guests([g.name for g in current.guests if g.name not in kept], current.hosts)
    for host in gone:
        remove_host(host)
        log("removed host %s" % host.name)
    ensure_keys(target.hosts)
    add_hosts(new)
    share_host_names(target.hosts)
    record_layout(target)


def cmd_up(args) -> int:
    t0 = time.monotonic()
    target = fleet_layout(args.hosts, args.guests)
    ensure_packages()
    STATE.mkdir(parents=True, exist_ok=True)
    ensure_kernel()
    ensure_main_initrd()
    ensure_initrd(FLEET_INITRD, FLEET_INIT)
    current = recorded_layout()
    health = lab_health(current)
    if health["bridge"] and all(h["init"] and h.get("addr_ok") for h in health["hosts"]):
        if not health["up"]:
            repair(health)
        for host in current.hosts:
            mark_sysfs(host)
            guest_link_up(host, init_pid(host))
        renew_main_guest(health)
        strays = remove_strays(current)
        if current != target:
            log("resizing the lab from %s to %s" % (current.describe(), target.describe()))
            resize(current, target)
        started = ensure_guests(target, lab_health(target))
        if current == target and health["up"] and not started and not strays:
            log("lab is already up; nothing changed")
        else:
            log("lab up (%s) in %.1f s" % (target.describe(), time.monotonic() - t0))
        return 0
    if health["anything"]:
        log("lab is partly up; tearing the rest down first")
        teardown()
    ensure_keys(target.hosts)
    (STATE / "etc-hosts").write_text(etc_hosts_text(target.hosts))
    bridge_up()
    chrony_up()
    log("keys, guest images, bridge %s and NTP server ready" % BRIDGE)
    add_hosts(target.hosts)
    record_layout(target)
    ensure_guests(target, lab_health(target))
    log("lab up (%s) in %.1f s; %s running on %s" % (target.describe(), time.monotonic() - t0, GUEST, GUEST_HOME.name))
    return 0


def repair(health: dict) -> None:
    """Namespaces and links are intact: restart only what died (daemons, NTP server); ensure_guests restarts guests."""
    if not health["chrony"]:
        chrony_up()
        log("restarted the NTP server")
    for host, info in zip(health["layout"].hosts, health["hosts"]):
        if not info["link_ok"]:
            link_up(host)
            log("%s: link %s up again" % (host.name, host.veth))
        started = start_daemons(host, info["init"])
        wait_daemons(host, info["init"])
        if started:
            log("%s: restarted %s" % (host.name, ", ".join(started)))


def teardown() -> None:
    """Kill every lab process (one SIGKILL per host init ends its namespaces), then the links, whatever size built them."""
    victims = marked_pids()
    namespaces = {_ns_inode(pid, "pid") for pid in victims} - {_ns_inode(os.getpid(), "pid"), None}
    for pid in victims + chrony_pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def gone():
        left = [p for p in _pids() if _alive(p) and (p in victims or _ns_inode(p, "pid") in namespaces)]
        return not left and not chrony_pids()

    wait_for("lab processes to exit", gone, 30)
    for link in lab_links():
        run(["ip", "link", "del", link], check=False)
    if _link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE])


def cmd_down(_args) -> int:
    t0 = time.monotonic()
    if not lab_health()["anything"]:
        LAYOUT_FILE.unlink(missing_ok=True)
        log("lab is already down; nothing changed")
        return 0
    teardown()
    leftovers = lab_leftovers()
    if leftovers:
        log("teardown left: " + "; ".join(leftovers))
        return 1
    LAYOUT_FILE.unlink(missing_ok=True)
    log("lab down in %.1f s" % (time.monotonic() - t0))
    return 0


def lab_leftovers() -> list:
    """What of the lab still exists on the machine (processes, links, mounts)."""
    found = ["process %d" % p for p in marked_pids() + chrony_pids()]
    found += ["link " + n for n in [BRIDGE] + lab_links() if _link_exists(n)]
    with open("/proc/self/mounts") as f:
        found += ["mount " + line.split()[1] for line in f if str(STATE) in line]
    return found


def print_host(h: dict, host: Host, layout: Layout) -> None:
    if h["init"] is None:
        print("%s (%s): down" % (h["name"], h["addr"]))
        return
    print("%s (%s): %s, init pid %d" % (h["name"], h["addr"], "up" if h["ok"] else "DEGRADED", h["init"]))
    print("  namespaces: " + " ".join("%s:[%s]" % kv for kv in h["namespaces"].items()))
    daemons = ("%s=%s" % (n, ",".join(map(str, p)) or "missing") for n, p in h["daemons"].items())
    print("  daemons: " + " ".join(daemons))
    print("  simulated KAE sysfs: %s (kernel player: %s)" % (host.sysfs, ",".join(map(str, h["player"])) or "not running"))
    print("  address eth0: %s" % ("%s/%d" % (h["addr"], PREFIX_LEN) if h["addr_ok"] else "missing"))
    print("  link %s: %s" % (host.veth, "up" if h["link_ok"] else "DOWN"))
    guestnet = _guestnet()
    print("  guests' link %s: %s (%s %s)" % (guestnet.controller_link(host.veth), "up" if h["guest_link_ok"] else "DOWN",
                                             GUEST, guestnet.GUEST_ADDR))
    print("  guest %s: %s" % (GUEST, h["guest"]))
    if layout.guests:
        print("  fleet guests: " + " ".join("%s=%s" % (g.name, h["guests"].get(g.name, "unknown")) for g in layout.guests))


def cmd_status(_args) -> int:
    health = lab_health()
    layout = health["layout"]
    print("layout: %s (%s)" % (layout.describe(), LAYOUT_FILE if LAYOUT_FILE.exists() else "default"))
    print("bridge %s %s: %s" % (BRIDGE, CONTROLLER_ADDR, "up" if health["bridge"] else "down"))
    print("ntp server chronyd on %s: %s" % (CONTROLLER_ADDR, ("pid %s" % health["chrony"][0])
                                            if health["chrony"] else "not running"))
    for h, host in zip(health["hosts"], layout.hosts):
        print_host(h, host, layout)
    for guest in layout.guests:
        where = running_on(health, guest.name)
        print("fleet guest %s (home %s, %d MiB): running on %s" % (guest.name, guest.home.name, guest.memory_mib,
                                                                   ", ".join(where) or "none"))
    running = running_on(health, GUEST)
    print("lab: %s; %s running on: %s" % ("up" if health["up"] else "DOWN", GUEST, ", ".join(running) or "none"))
    return 0 if health["up"] else 1


def inventory(layout: Layout) -> dict:
    """The lab inventory's dynamic part (Ansible's script inventory format): every lab host of LAYOUT in
    kae_hypervisors, with its address, its simulated tree and the guests `up` started on it."""
    homes = {}
    for guest in lab_guests(layout):
        homes.setdefault(guest.home.name, []).append(guest.name)
    return {
        "kae_hypervisors": {"hosts": [h.name for h in layout.hosts],
                            "vars": {"kae_lab_fleet_guests": [g.name for g in layout.guests]}},
        "_meta": {"hostvars": dict((h.name, {"ansible_host": h.addr, "kae_sysfs_root": str(h.sysfs),
                                             "kae_lab_home_guests": homes.get(h.name, [])}) for h in layout.hosts)},
    }


def cmd_guest_dirty(args) -> int:
    layout = recorded_layout()
    if not lab_health(layout)["up"]:
        raise LabError("the lab is not up: run `kaelab.py up` first")
    mib_s = args.mib_s
    home = restart_main_guest(layout, mib_s)
    log("%s restarted on %s, its memory dirtier %s" % (GUEST, home, "unbounded (the default)" if mib_s is None else
                                                       "at about %d MiB/s" % mib_s))
    return 0


def cmd_inventory(args) -> int:
    # What runs, not what could: a lab that is down lists nothing here (inventories/lab/hosts.yml still names the
    # default hosts).
    if args.host:
        print("{}")
        return 0
    print(json.dumps(inventory(recorded_layout()) if LAYOUT_FILE.exists() else {"_meta": {"hostvars": {}}}, indent=2))
    return 0


def locked(func):
    def wrapper(args):
        STATE.mkdir(parents=True, exist_ok=True)
        with open(LOCK_FILE, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return func(args)
    return wrapper


def count(low: int, high: int, what: str):
    """argparse type: a whole number from LOW to HIGH, refused with a sentence naming WHAT otherwise."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("%s must be a whole number from %d to %d, got %r" % (what, low, high, text)) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError("%s must be from %d to %d, got %d" % (what, low, high, value))
        return value
    return parse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="kaelab.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rate = count(0, MAX_DIRTY_MIB_S, "the dirty rate")
    up = sub.add_parser("up", help="bring the lab up at the given size, growing or shrinking what runs (idempotent)")
    up.add_argument("--hosts", type=count(MIN_HOSTS, MAX_HOSTS, "--hosts"), default=len(HOSTS),
                    help="lab hosts kae-lab-a, kae-lab-b, ... (%d-%d, default %d)" % (MIN_HOSTS, MAX_HOSTS, len(HOSTS)))
    up.add_argument("--guests", type=count(0, MAX_GUESTS, "--guests"), default=0,
                    help="light guests kae-fleet-1.. beside kae-guest, spread over the hosts (0-%d, default 0)" % MAX_GUESTS)
    up.set_defaults(func=locked(cmd_up))
    dirty = sub.add_parser("guest-dirty", help="restart %s on its home host with its memory dirtier capped (a guest that "
                           "converges easily, or with a bandwidth cap one that cannot)" % GUEST)
    dirty.add_argument("mib_s", metavar="MIB_S|default", type=lambda text: None if text == "default" else rate(text),
                       help="about this many MiB/s (0-%d, 0: no dirtier), or default: as fast as the guest can" % MAX_DIRTY_MIB_S)
    dirty.set_defaults(func=locked(cmd_guest_dirty))
    sub.add_parser("status", help="show the lab; exit 1 unless fully up").set_defaults(func=cmd_status)
    sub.add_parser("down", help="tear the lab down, whatever size it has (idempotent)").set_defaults(func=locked(cmd_down))
    inv = sub.add_parser("inventory", help="the running lab's hosts as an Ansible script inventory (JSON)")
    inv.add_argument("--list", action="store_true", help="every host and group (the default)")
    inv.add_argument("--host", help="one host's variables (always empty: --list carries them in _meta)")
    inv.set_defaults(func=cmd_inventory)
    init = sub.add_parser("init")  # internal: PID 1 of a lab host
    init.add_argument("mark", choices=[INIT_MARK])
    init.add_argument("--player", metavar="SYSFS_ROOT", help="keep the simulated kernel running on this tree")
    init.add_argument("host")
    args = parser.parse_args(argv)
    if args.command == "init":
        ns_init(args.host, args.player)
        return 0
    if args.command == "inventory":
        return args.func(args)
    if os.geteuid() != 0:
        parser.error("run as root: the lab creates namespaces, links and daemons")
    try:
        return args.func(args)
    except (LabError, subprocess.TimeoutExpired) as exc:
        log("error: %s" % exc)
        if args.command == "up":
            log("the lab may be partly up: `kaelab.py up` tears that down and builds it again, `kaelab.py down` removes it")
        return 1


if __name__ == "__main__":
    sys.exit(main())
