# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet in the lab: ``kaelab.py up --hosts 3 --guests 4`` grows the default lab to three hosts and five guests.

The guest role, run on every host for the guests running there, records each guest's VFs in its
``<metadata><kae:vfs>`` (the lab's trees carry the lab marker); device_info and hypervisor_info then show every guest
on exactly one host, holding one VF of each engine on one NUMA node, no VF held twice. Afterwards ``up`` without
flags shrinks the lab back to the default (kae-guest running on one host), with kae-guest's holdings as they were.

Other test runs use the lab too: the whole test holds the machine-wide lab test lock (scripts/test.sh takes it for
the run; run by hand, the test takes it itself) and restores the default lab before the lock is released.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import textwrap
import time
from pathlib import Path

import libvirt
import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx

FLEET = ("--hosts", "3", "--guests", "4")
# kaelab.fleet_layout(3, 4): kae-fleet-i starts on host i mod 3.
HOMES = {"kae-fleet-1": "kae-lab-b", "kae-fleet-2": "kae-lab-c", "kae-fleet-3": "kae-lab-a", "kae-fleet-4": "kae-lab-b"}
TEST_LOCK = Path("/run/lock/kae-lab-tests.lock")
ENGINES = {"zip", "sec", "hpre"}

GUEST_PLAY = """
- name: Give every guest of the fleet its own simulated VFs
  hosts: kae_hypervisors
  gather_facts: false
  roles:
    - role: openeuler.kae.guest
      vars:
        guest_domains: "{{ fleet_domains[inventory_hostname] | default([]) }}"
"""

READ_PLAY = """
- name: Read what each hypervisor's guests hold
  hosts: kae_hypervisors
  gather_facts: false
  tasks:
    - name: Read the KAE devices and who holds them
      openeuler.kae.device_info:
        sysfs_root: "{{ kae_sysfs_root }}"
      register: fleet_kae

    - name: Read the guests holding KAE VFs
      openeuler.kae.hypervisor_info:
        host_name: "{{ inventory_hostname }}"
        sysfs_root: "{{ kae_sysfs_root }}"
        kae_only: true
        devices: "{{ fleet_kae.devices }}"
      register: fleet_hv

    - name: Hand both to the test
      ansible.builtin.copy:
        content: "{{ {'kae': fleet_kae, 'hv': fleet_hv} | to_json }}"
        dest: "%(out)s/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
"""


MOVE_PLAY = """
- name: Move a fleet guest to a host whose VFs at its addresses may be taken
  hosts: "{{ fleet_source }}"
  gather_facts: false
  tasks:
    - name: Read both hosts' KAE devices
      openeuler.kae.device_info:
        sysfs_root: "{{ hostvars[item].kae_sysfs_root }}"
      delegate_to: "{{ item }}"
      loop: ["{{ fleet_source }}", "{{ fleet_destination }}"]
      register: fleet_pair

    - name: Map the guest's simulated VFs to free VFs of the destination
      openeuler.kae.hostdev_remap:
        domain: "{{ fleet_guest }}"
        source_devices: "{{ fleet_pair.results[0].devices }}"
        destination_devices: "{{ fleet_pair.results[1].devices }}"
        destination_host: "{{ fleet_destination }}"
        sysfs_root: "{{ kae_sysfs_root }}"
      register: fleet_remap

    - name: Migrate it
      openeuler.kae.live_migration:
        domain: "{{ fleet_guest }}"
        destination_uri: "qemu+ssh://{{ fleet_destination }}/system"
        migrate_uri: "tcp://{{ fleet_destination }}"
        destination_xml: "{{ fleet_remap.destination_xml | default(omit, true) }}"

    - name: Hand the remap to the test
      ansible.builtin.copy:
        content: "{{ fleet_remap | to_json }}"
        dest: "%(out)s/remap.json"
        mode: "0644"
      delegate_to: localhost
"""


def lock_holders(path):
    """PIDs holding a flock on PATH, from /proc/locks."""
    inode = os.stat(path).st_ino
    holders = []
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
                holders.append(int(fields[4]))
    return holders


def ancestors():
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        with open("/proc/%d/stat" % pid) as stat:
            pid = int(stat.read().rsplit(")", 1)[1].split()[1])
    return pids


@pytest.fixture
def test_lock():
    """The machine-wide lab test lock, held for the whole test: by scripts/test.sh around this run, or taken here."""
    TEST_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(TEST_LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holders = lock_holders(TEST_LOCK)
            if not set(holders) & ancestors():
                pytest.fail("another lab test run (PIDs %s) holds %s; run this test through scripts/test.sh integration"
                            % (holders, TEST_LOCK))
        yield


def running_on(conns, name):
    return sorted(host for host, conn in conns.items()
                  if any(dom.name() == name and dom.isActive() for dom in conn.listAllDomains()))


def lab_vfs_of(conn, name):
    """(live, defined) <kae:vfs> holdings of domain NAME on CONN ([] when absent)."""
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return [], []
    live = dx.lab_vf_bdfs(dx.parse_domain(dom.XMLDesc(0))) if dom.isActive() else []
    defined = dx.lab_vf_bdfs(dx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))) if dom.isPersistent() else []
    return live, defined


@pytest.fixture
def fleet(lab, test_lock, figures, ansible_adhoc):
    """The fleet lab up (3 hosts, kae-guest and 4 light guests); afterwards the default lab as it was found."""
    conns = open_conns(lab, lab.hosts)
    before = dict((host, (lab_vfs_of(conn, lab.guest)[0], persistent(conn, lab.guest))) for host, conn in conns.items())
    for conn in conns.values():
        conn.close()
    start = time.monotonic()
    up = lab.cli("up", *FLEET)
    figures.append(("fleet lab up from the default lab, 3 hosts + 4 guests (s)", round(time.monotonic() - start, 1)))
    hosts = dict(lab.hosts, **{"kae-lab-c": lab.kaelab.lab_host(2).addr})
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield dataclasses.replace(lab, hosts=hosts)
    finally:
        start = time.monotonic()
        back = lab.cli("up")
        figures.append(("fleet lab back to the default lab (s)", round(time.monotonic() - start, 1)))
        assert back.returncode == 0, back.stdout + back.stderr
        restore_guest(lab, before, ansible_adhoc)
    status = lab.cli("status")
    assert status.returncode == 0, status.stdout
    assert "layout: 2 hosts, 0 extra guests" in status.stdout and "kae-lab-c" not in status.stdout
    assert re.search(r"^lab: up; %s running on: kae-lab-[ab]$" % lab.guest, status.stdout, re.M), status.stdout


def open_conns(lab, hosts):
    return dict((name, libvirt.open(dataclasses.replace(lab, hosts=hosts).libvirt_uri(name))) for name in hosts)


def persistent(conn, name):
    try:
        return bool(conn.lookupByName(name).isPersistent())
    except libvirt.libvirtError:
        return False


def restore_guest(lab, before, ansible_adhoc):
    """Give kae-guest back, where it runs, the lab holdings it had before the test, and its transience: the guest role
    changed the holdings and makes a transient domain (one migrated in) persistent when it redefines it."""
    conns = open_conns(lab, lab.hosts)
    try:
        for host in running_on(conns, lab.guest):
            wanted, was_persistent = before.get(host, ([], False))
            live, defined = lab_vfs_of(conns[host], lab.guest)
            if live != wanted or (defined and defined != wanted):
                done = ansible_adhoc(host, "openeuler.kae.guest_config", json.dumps(
                    {"domain": lab.guest, "sysfs_root": str(lab.kaelab.HOSTS_BY_NAME[host].sysfs), "lab_vfs": wanted}))
                assert done.returncode == 0, done.stdout + done.stderr
            if not was_persistent and persistent(conns[host], lab.guest):
                conns[host].lookupByName(lab.guest).undefine()   # it keeps running, transient again
    finally:
        for conn in conns.values():
            conn.close()


def run_guest_role(fleet, ansible_playbook, tmp_path, domains, figures):
    """The guest role on every fleet host for DOMAINS[host]; a second run must change nothing."""
    (tmp_path / "guests.yml").write_text(textwrap.dedent(GUEST_PLAY))
    (tmp_path / "domains.json").write_text(json.dumps({"fleet_domains": domains}))
    extra = "@%s" % (tmp_path / "domains.json")
    start = time.monotonic()
    first = ansible_playbook(str(tmp_path / "guests.yml"), "-e", extra)
    figures.append(("guest role over the fleet, 5 guests on 3 hosts (s)", round(time.monotonic() - start, 1)))
    assert first.returncode == 0, first.stdout + first.stderr
    # The lab inventory (hosts.yml and the script inventories/lab/fleet.sh) gave Ansible all three hosts.
    assert set(re.findall(r"^(kae-lab-[a-z])\s+: ok=", first.stdout, re.M)) == set(fleet.hosts)
    again = ansible_playbook(str(tmp_path / "guests.yml"), "-e", extra)
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.findall(r"changed=(\d+)", again.stdout) == ["0"] * len(fleet.hosts), again.stdout


def check_holdings(host, facts, guests, conn):
    """On HOST every guest of GUESTS holds one VF of each engine on one NUMA node, no VF is held twice, libvirt's
    <kae:vfs> and hypervisor_info say the same."""
    assert facts["kae"]["lab"] is True and facts["kae"]["libvirt"]["available"] is True
    vfs = [d for d in facts["kae"]["devices"] if d["function"] == "vf"]
    assert all(len(d["domains"]) <= 1 for d in vfs), "a VF held twice on %s" % host
    held = {}
    for vf in vfs:
        for name in vf["domains"]:
            held.setdefault(name, []).append(vf["bdf"])
    for guest in guests:
        mine = [vf for vf in vfs if vf["bdf"] in held.get(guest, [])]
        assert sorted(vf["engine"] for vf in mine) == sorted(ENGINES), (host, guest, mine)
        assert len({vf["numa_node"] for vf in mine}) == 1, (host, guest, mine)
        live, defined = lab_vfs_of(conn, guest)
        assert live == sorted(held[guest]) and defined in ([], live), (host, guest, live, defined)
    hv = dict((g["name"], sorted(g["vfs"])) for g in facts["hv"]["guests"])
    assert hv == dict((guest, sorted(held[guest])) for guest in guests), (host, hv)


def move_a_guest(fleet, ansible_playbook, tmp_path, figures):
    """Migrate kae-fleet-1 to the host of kae-fleet-3 (hostdev_remap, live_migration): its holdings there are VFs no
    other guest of that host holds, moved when its own addresses are taken there."""
    guest, source, destination = "kae-fleet-1", HOMES["kae-fleet-1"], HOMES["kae-fleet-3"]
    conns = open_conns(fleet, fleet.hosts)
    try:
        before = lab_vfs_of(conns[source], guest)[0]
        # What device_info read on the destination just before: every VF a domain there holds, running or defined.
        facts = json.loads((tmp_path / ("%s.json" % destination)).read_text())
        taken = set(d["bdf"] for d in facts["kae"]["devices"] if d["function"] == "vf" and d["domains"])
        (tmp_path / "move.yml").write_text(textwrap.dedent(MOVE_PLAY % {"out": tmp_path}))
        start = time.monotonic()
        moved = ansible_playbook(str(tmp_path / "move.yml"), "-e", json.dumps(
            {"fleet_source": source, "fleet_destination": destination, "fleet_guest": guest}))
        figures.append(("remap and migration of a light guest (s)", round(time.monotonic() - start, 1)))
        assert moved.returncode == 0, moved.stdout + moved.stderr
        remap = json.loads((tmp_path / "remap.json").read_text())
        assert remap["remapped"] is bool(taken & set(before)), (remap, taken, before)
        assert running_on(conns, guest) == [destination]
        after = lab_vfs_of(conns[destination], guest)[0]
        assert len(after) == 3 and not taken & set(after) and after == sorted(remap["mapping"].values()), (after, taken)
    finally:
        for conn in conns.values():
            conn.close()


def test_a_fleet_of_three_hosts_and_five_guests_each_guest_with_its_own_vfs(fleet, ansible_playbook, tmp_path, figures):
    status = fleet.cli("status")
    assert status.returncode == 0, status.stdout
    assert "layout: 3 hosts, 4 extra guests" in status.stdout
    for name, addr in fleet.hosts.items():
        assert re.search(r"^%s \(%s\): up, init pid \d+$" % (name, re.escape(addr)), status.stdout, re.M), status.stdout
    for guest, home in HOMES.items():
        assert "fleet guest %s (home %s, 96 MiB): running on %s" % (guest, home, home) in status.stdout, status.stdout

    conns = open_conns(fleet, fleet.hosts)
    try:
        where = dict((guest, running_on(conns, guest)) for guest in [fleet.guest] + sorted(HOMES))
        assert all(len(hosts) == 1 for hosts in where.values()), where
        domains = {}
        for guest, (host,) in where.items():
            domains.setdefault(host, []).append(guest)
        run_guest_role(fleet, ansible_playbook, tmp_path,
                       dict((host, [{"name": guest} for guest in guests]) for host, guests in domains.items()), figures)
        (tmp_path / "read.yml").write_text(textwrap.dedent(READ_PLAY % {"out": tmp_path}))
        read = ansible_playbook(str(tmp_path / "read.yml"))
        assert read.returncode == 0, read.stdout + read.stderr
        for host in fleet.hosts:
            check_holdings(host, json.loads((tmp_path / ("%s.json" % host)).read_text()), domains.get(host, []), conns[host])
    finally:
        for conn in conns.values():
            conn.close()

    move_a_guest(fleet, ansible_playbook, tmp_path, figures)

    inventory = json.loads(fleet.cli("inventory", "--list").stdout)
    assert inventory["kae_hypervisors"]["hosts"] == sorted(fleet.hosts)
    assert inventory["kae_hypervisors"]["vars"]["kae_lab_fleet_guests"] == sorted(HOMES)
    assert inventory["_meta"]["hostvars"]["kae-lab-c"] == {
        "ansible_host": fleet.hosts["kae-lab-c"], "kae_sysfs_root": str(fleet.kaelab.STATE / "hosts" / "kae-lab-c" / "sysfs"),
        "kae_lab_home_guests": ["kae-fleet-2"]}


def fleet_processes():
    """PIDs of the light guests' QEMU processes anywhere on the machine."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                if b"guest=kae-fleet-" in handle.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.mark.lab_teardown
def test_down_removes_a_fleet_whatever_its_size(lab_alone, test_lock, figures):
    kaelab = lab_alone.kaelab
    up = lab_alone.cli("up", "--hosts", "4", "--guests", "2")
    assert up.returncode == 0, up.stdout + up.stderr
    assert kaelab.init_pid(kaelab.lab_host(3)) is not None and len(fleet_processes()) == 2
    try:
        start = time.monotonic()
        down = lab_alone.cli("down")
        figures.append(("down of a 4-host lab with 3 guests (s)", round(time.monotonic() - start, 1)))
        assert down.returncode == 0 and "lab down in" in down.stdout, down.stdout + down.stderr
        assert kaelab.lab_leftovers() == [] and kaelab.lab_health()["anything"] is False
        assert kaelab.lab_links() == [] and fleet_processes() == [] and not kaelab.LAYOUT_FILE.exists()
        assert json.loads(lab_alone.cli("inventory").stdout) == {"_meta": {"hostvars": {}}}
    finally:
        again = lab_alone.cli("up")
        assert again.returncode == 0, again.stdout + again.stderr
    status = lab_alone.cli("status")
    assert status.returncode == 0 and "layout: 2 hosts, 0 extra guests" in status.stdout, status.stdout
