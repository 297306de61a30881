# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The openeuler.kae.migration role's pre-flight against a destination Ansible cannot reach, run by ansible-playbook
on this machine: the source is this machine (local connection), the destination an ssh port nobody listens on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from ansible_collections.openeuler.kae.lab import simsysfs

REPO = Path(__file__).resolve().parents[3]
PLAY = """
- name: Pre-flight only
  hosts: localhost
  gather_facts: false
  roles:
    - role: openeuler.kae.migration
"""


def closed_port():
    """A local TCP port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_preflight(tmp_path):
    root = str(tmp_path / "sysfs")
    simsysfs.build(root, vfs=2, nodes=(0,))
    inventory = {"all": {"hosts": {
        "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "kae-src": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "kae_sysfs_root": root},
        "kae-dst": {"ansible_host": "127.0.0.1", "ansible_port": closed_port(), "ansible_user": "nobody",
                    "ansible_ssh_common_args": "-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                    "kae_sysfs_root": root},
    }}}
    role_vars = {"migration_hosts": ["kae-src", "kae-dst"], "migration_domain": "kae-guest", "migration_ntp_servers": ["127.0.0.1"],
                 "migration_destination_uri_format": "qemu+unix:///system?socket=%s/no-libvirt-%%s" % tmp_path}
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "vars.json").write_text(json.dumps(role_vars))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(tmp_path / "play.yml"),
            "-i", str(tmp_path / "inventory.json"), "-e", "@" + str(tmp_path / "vars.json"), "--tags", "migration_preflight"]
    return subprocess.run(argv, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_destination_ansible_cannot_reach_is_named_in_the_refusal(tmp_path):
    result = run_preflight(tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    refusal = [line for line in result.stdout.splitlines() if "check(s) failed, nothing was migrated" in line]
    assert refusal, result.stdout
    assert "pre-flight of kae-guest between kae-src and kae-dst" in refusal[-1]
    # Named once, first, with Ansible's reason; its other checks add nothing.
    assert "(1) cannot reach kae-dst over ssh from the controller, so nothing there was checked: " in refusal[-1]
    assert refusal[-1].count("kae-dst over ssh") == 1
    assert "KAE devices of kae-dst" not in refusal[-1]
    # The source's own check still says why it failed; the play ran to its refusal, not to a template error.
    assert "location check from kae-src: " in refusal[-1]
    assert "Refuse to migrate when a pre-flight check failed" in result.stdout
    assert "Finalization of task args" not in result.stdout
