# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for tests against the local two-host lab (lab/kaelab.py).

``lab`` (session) brings the lab up and, only if it was not up before the session,
tears it down at the end; ``conns`` (module) holds libvirt connections to both hosts. ``ansible_playbook`` / ``ansible_adhoc`` run the venv's
Ansible from the repository root against the lab inventory and return the result.
Tests marked ``lab_teardown`` (fixture ``lab_alone``) take the lab down themselves; they
run last, leave the lab up again, and are skipped while another test session holds a lease
on the lab (a developer machine shared by several sessions; CI runs one).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
KAELAB_PATH = REPO / "lab" / "kaelab.py"


def _load_kaelab():
    spec = importlib.util.spec_from_file_location("kaelab", KAELAB_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("kaelab", module)
    spec.loader.exec_module(module)
    return module


KAELAB = _load_kaelab()


def run_lab(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``lab/kaelab.py ARGS`` with this interpreter; output captured as text."""
    return subprocess.run([sys.executable, str(KAELAB_PATH)] + list(args), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _ansible_env() -> dict:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_DEPRECATION_WARNINGS="0", PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    env.pop("ANSIBLE_INVENTORY", None)
    return env


def run_ansible_playbook(playbook: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``ansible-playbook PLAYBOOK ARGS`` from the repository root with the venv (default lab inventory)."""
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), playbook] + list(args), cwd=REPO, env=_ansible_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


def run_ansible(pattern: str, module: str, module_args: str = "", *args: str,
                timeout: float = 300) -> subprocess.CompletedProcess:
    """Ad-hoc ``ansible PATTERN -m MODULE -a ARGS`` from the repository root with the venv."""
    argv = [str(VENV_BIN / "ansible"), pattern, "-m", module] + (["-a", module_args] if module_args else [])
    return subprocess.run(argv + list(args), cwd=REPO, env=_ansible_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


@dataclass
class Lab:
    """What tests need to know about the running lab."""

    kaelab: object
    was_up: bool
    hosts: dict = field(default_factory=dict)   # name -> address
    guest: str = ""
    ntp_server: str = ""

    cli_path: Path = KAELAB_PATH

    @staticmethod
    def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``lab/kaelab.py ARGS`` (up, status, down)."""
        return run_lab(*args, timeout=timeout)

    def libvirt_uri(self, host: str) -> str:
        """URI for libvirt-python on the controller: root over ssh with the lab key and pinned host keys.

        libssh2, not libssh: libvirt 9.0's libssh transport stalls on replies of a few KiB (capabilities XML).
        """
        return ("qemu+libssh2://root@{addr}/system?keyfile={key}&known_hosts={kh}&known_hosts_verify=normal"
                "&sshauth=privkey".format(addr=self.hosts[host], key=self.kaelab.LAB_KEY, kh=self.kaelab.KNOWN_HOSTS))

    def running_on(self, conns: dict) -> list:
        """Sorted names of the lab hosts where the guest is active (conns: the ``conns`` fixture)."""
        return sorted(name for name, conn in conns.items()
                      if any(dom.name() == self.guest and dom.isActive() for dom in conn.listAllDomains()))

    def host_path(self, host: str, path: str) -> Path:
        """Where a file a lab host sees at PATH under /var/log/libvirt lives on the controller."""
        rel = Path(path).relative_to("/var/log/libvirt")
        return self.kaelab.STATE / "hosts" / host / "log-libvirt" / rel

    def serial_log(self, host: str) -> Path:
        return self.host_path(host, self.kaelab.SERIAL_LOG)

    def qemu_log(self, host: str) -> Path:
        return self.host_path(host, self.kaelab.QEMU_LOG)


def pytest_configure(config):
    config.addinivalue_line("markers", "lab_teardown: takes the lab down; runs after every other lab test")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("lab_teardown") is not None)


FIGURES: list = []


@pytest.fixture(scope="session")
def figures():
    """Append (label, value) pairs; they are printed in the terminal summary (never asserted)."""
    return FIGURES


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("lab figures")
        for label, value in FIGURES:
            terminalreporter.write_line("%s: %s" % (label, value))


LEASES = KAELAB.STATE / "test-leases"


def _take_lease() -> Path:
    """Mark this test session as a user of the lab (one file per session, named by PID)."""
    LEASES.mkdir(parents=True, exist_ok=True)
    lease = LEASES / str(os.getpid())
    lease.write_text("")
    return lease


def other_sessions() -> list:
    """PIDs of other live test sessions using the lab (stale leases of dead sessions are removed)."""
    others = []
    for lease in LEASES.glob("*"):
        pid = int(lease.name) if lease.name.isdigit() else None
        if pid == os.getpid():
            continue
        if pid and os.path.exists("/proc/%d" % pid):
            others.append(pid)
        else:
            lease.unlink(missing_ok=True)
    return others


@pytest.fixture(scope="session")
def lab(figures):
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, links, daemons)")
    was_up = run_lab("status").returncode == 0
    up = run_lab("up")
    assert up.returncode == 0, "lab up failed:\n%s%s" % (up.stdout, up.stderr)
    lease = _take_lease()
    figures.append(("lab up (session start)", up.stdout.strip().splitlines()[-1]))
    yield Lab(kaelab=KAELAB, was_up=was_up, hosts={h.name: h.addr for h in KAELAB.HOSTS}, guest=KAELAB.GUEST,
              ntp_server=KAELAB.CONTROLLER_ADDR)
    lease.unlink(missing_ok=True)
    # Another session that started while the lab was up relies on it: leave the lab to the last one out.
    if not was_up and not other_sessions():
        down = run_lab("down")
        assert down.returncode == 0, "lab down failed:\n%s%s" % (down.stdout, down.stderr)


@pytest.fixture
def lab_alone(lab):
    """The lab, for a test that takes it down: skipped while another test session uses the lab."""
    others = other_sessions()
    if others:
        pytest.skip("other test sessions use the lab (PIDs %s); a teardown test would break them" % others)
    return lab


@pytest.fixture(scope="module")
def conns(lab):
    """libvirt-python connections from the controller to every lab host, by host name."""
    opened = {name: libvirt.open(lab.libvirt_uri(name)) for name in lab.hosts}
    yield opened
    for conn in opened.values():
        conn.close()


@pytest.fixture
def ansible_playbook(lab):
    """Callable: ansible_playbook(PLAYBOOK, *ARGS) -> CompletedProcess, run from the repository root."""
    return run_ansible_playbook


@pytest.fixture
def ansible_adhoc(lab):
    """Callable: ansible_adhoc(PATTERN, MODULE, MODULE_ARGS, *ARGS) -> CompletedProcess."""
    return run_ansible
