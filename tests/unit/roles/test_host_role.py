# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The openeuler.kae.host role's VF provisioning, run by ansible-playbook on this machine against a simulated tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.openeuler.kae.lab import simsysfs
from ansible_collections.openeuler.kae.plugins.module_utils import _devices
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs

REPO = Path(__file__).resolve().parents[3]
UNREACHABLE_URI = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
PLAY = """
- name: Provision the VFs
  hosts: all
  gather_facts: false
  roles:
    - role: openeuler.kae.host
"""


def run_role(tmp_path, **role_vars):
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "vars.json").write_text(json.dumps(role_vars))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(tmp_path / "play.yml"),
            "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
            "-e", "@" + str(tmp_path / "vars.json"), "--tags", "host_vfs"]
    return subprocess.run(argv, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=300, check=False)


def test_provisioning_refuses_when_libvirt_cannot_say_who_holds_the_vfs(tmp_path):
    # 22.03-style VFs on the host driver: the role would rebind all of them, under any guest that holds one.
    root = str(tmp_path / "sysfs")
    simsysfs.build(root, vfs=2, nodes=(0,), migration_driver="vfio-pci", vf_driver="hisi_zip")
    before = [(d["bdf"], d["driver"]) for d in _devices.scan(Sysfs(root))]
    result = run_role(tmp_path, host_lab=True, host_sysfs_root=root, host_libvirt_uri=UNREACHABLE_URI, host_num_vfs=2)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "VF ownership could not be read on localhost (cannot connect to libvirt at %s" % UNREACHABLE_URI in result.stdout
    assert "the role changes no VF while a domain might hold one. Start libvirtd or set host_libvirt_uri, then run again." in result.stdout
    assert "Provision the VFs of each PF" not in result.stdout
    assert [(d["bdf"], d["driver"]) for d in _devices.scan(Sysfs(root))] == before
    assert not os.path.exists(os.path.join(root, "dmesg"))
