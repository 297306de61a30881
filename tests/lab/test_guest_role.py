# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest role in the lab, against real libvirt and QEMU on kae-lab-a.

A throwaway domain (defined, never started) takes the role's changes, so the lab guest keeps
running for the other tests. The KAE VFs are the lab's simulated ones: their hostdevs are
rendered and validated against libvirt's domain schema (virt-xml-validate); they are put into
the probe's definition only where a test asks for it, since the lab has no device to attach.
"""

from __future__ import annotations

import json
import re
import textwrap
import xml.etree.ElementTree as ET

import pytest
from ansible_collections.openeuler.kae.plugins.module_utils._devices import is_free
from ansible_collections.openeuler.kae.plugins.module_utils._queues import same_class

HOST = "kae-lab-a"
PROBE = "kae-role-probe"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
PROBE_XML = """<domain type='qemu' xmlns:qemu='%s'>
  <name>%s</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
  <qemu:commandline>
    <qemu:arg value='-msg'/>
    <qemu:arg value='timestamp=on'/>
    <qemu:arg value='--trace'/>
    <qemu:arg value='runstate_set'/>
  </qemu:commandline>
</domain>
""" % (QEMU_NS, PROBE)


def recap_changed(output, host=HOST):
    match = re.search(r"^%s\s+: ok=\d+\s+changed=(\d+)" % re.escape(host), output, re.M)
    assert match, "no PLAY RECAP line for %s in:\n%s" % (host, output)
    return int(match.group(1))


def role_playbook(tmp_path, domain=PROBE, host=HOST, domains=None):
    path = tmp_path / "guest_role.yml"
    path.write_text(textwrap.dedent("""\
        - name: Guest definition for KAE live migration
          hosts: %s
          gather_facts: false
          roles:
            - role: openeuler.kae.guest
              vars:
                guest_domains: %s
        """ % (host, json.dumps([{"name": name} for name in (domains or [domain])]))))
    return str(path)


def define(ansible_adhoc, name, xml):
    """Define domain NAME from XML on kae-lab-a; returns a reader of its inactive XML."""
    xml_path = "/tmp/%s.xml" % name
    copied = ansible_adhoc(HOST, "ansible.builtin.copy", "dest=%s mode=0644 content=%s" % (xml_path, _quoted(xml)))
    assert copied.returncode == 0, copied.stdout + copied.stderr
    defined = ansible_adhoc(HOST, "ansible.builtin.command", "virsh define %s" % xml_path)
    assert defined.returncode == 0, defined.stdout + defined.stderr

    def read():
        dumped = ansible_adhoc(HOST, "ansible.builtin.command", "virsh dumpxml --inactive %s" % name)
        assert dumped.returncode == 0, dumped.stdout + dumped.stderr
        return ET.fromstring(dumped.stdout[dumped.stdout.index("<domain"):])
    return read


@pytest.fixture
def probe(ansible_adhoc, tmp_path):
    """Define the probe domain on kae-lab-a (and undefine it afterwards); returns a reader of its inactive XML."""
    yield define(ansible_adhoc, PROBE, PROBE_XML)
    ansible_adhoc(HOST, "ansible.builtin.command", "virsh undefine %s" % PROBE)


def _quoted(text):
    return "'%s'" % text.replace("'", "\\'").replace("\n", "\\n")


def trace_patterns(root):
    args = [arg.get("value") for arg in root.iter("{%s}arg" % QEMU_NS)]
    return [args[i + 1] for i in range(len(args) - 1) if args[i] == "--trace"]


def hostdev_sources(root):
    return [hostdev.find("source/address").attrib for hostdev in root.iter("hostdev")]


def hostdev_bdfs(root):
    return sorted("%04x:%02x:%02x.%x" % tuple(int(a[key], 16) for key in ("domain", "bus", "slot", "function"))
                  for a in hostdev_sources(root))


def kae_overrides(root):
    """{alias: [property attributes]} of the domain's <qemu:override> entries."""
    return dict((device.get("alias"), [prop.attrib for prop in device.iter("{%s}property" % QEMU_NS)])
                for device in root.iter("{%s}device" % QEMU_NS))


def test_role_sets_trace_arguments_then_changes_nothing(probe, ansible_playbook, tmp_path):
    playbook = role_playbook(tmp_path)
    first = ansible_playbook(playbook, "--diff")
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap_changed(first.stdout) == 1
    assert '+    <qemu:arg value="all_vcpus*" />' in first.stdout, "the diff shows the trace arguments added"
    assert "Validate the predicted definition against libvirt's domain schema" in first.stdout
    assert re.search(r"KAE VFs: 0000:\S+ zip, 0000:\S+ hpre, 0000:\S+ sec on NUMA node \d", first.stdout)
    assert "there is no device to pass through" in first.stdout
    root = probe()
    # Other arguments stay; the role's patterns come after them.
    assert trace_patterns(root) == ["runstate_set", "all_vcpus*", "vm_state_notify"]
    assert [arg.get("value") for arg in root.iter("{%s}arg" % QEMU_NS)][:2] == ["-msg", "timestamp=on"]
    assert hostdev_sources(root) == [], "the lab's simulated VFs are not put into the definition by default"

    second = ansible_playbook(playbook, "--diff")
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap_changed(second.stdout) == 0
    assert "definition already as requested" in second.stdout


def test_role_defines_hostdevs_and_placement_idempotently_when_asked(probe, ansible_playbook, tmp_path):
    playbook = role_playbook(tmp_path)
    extra = ["-e", '{"guest_define_hostdevs": true, "guest_placement": "cputune"}']
    first = ansible_playbook(playbook, *extra)
    assert first.returncode == 0, first.stdout + first.stderr
    root = probe()
    sources = hostdev_sources(root)
    assert len(sources) == 3 and all(source["domain"] == "0x0000" for source in sources)
    assert root.find("numatune/memory").get("mode") == "strict" and root.find("cputune/vcpupin") is not None
    second = ansible_playbook(playbook, *extra)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap_changed(second.stdout) == 0, "the guest keeps the VFs it holds"
    assert hostdev_sources(probe()) == sources


def test_upstream_schema_rejects_the_openeuler_migration_attribute(probe, ansible_playbook, tmp_path):
    # The lab runs upstream libvirt: its schema has no migration='on', so the check must fail before any change.
    failed = ansible_playbook(role_playbook(tmp_path), "-e", '{"guest_hostdev_migration_attr": true}')
    assert failed.returncode != 0
    assert "Validate the predicted definition" in failed.stdout and "fails to validate" in failed.stdout
    assert trace_patterns(probe()) == ["runstate_set"], "nothing was defined"


def test_playbook_guest_phase_gives_the_lab_guest_its_trace_arguments_once(lab, conns, ansible_playbook):
    """The lab's guest XML has no --trace argument: the guest phase of kae_migrate.yml sets them (and restarts it)."""
    first = ansible_playbook("playbooks/kae_migrate.yml", "--tags", "guest")
    assert first.returncode == 0, first.stdout + first.stderr
    again = ansible_playbook("playbooks/kae_migrate.yml", "--tags", "guest")
    assert again.returncode == 0, again.stdout + again.stderr
    # Over both hosts: the guest is prepared where it is defined (where it runs, and where earlier rounds left
    # its definition) and skipped elsewhere; the second run changes nothing anywhere.
    assert all(recap_changed(again.stdout, host) == 0 for host in lab.hosts)
    assert "%s: definition already as requested" % lab.guest in again.stdout
    running = lab.running_on(conns)
    assert len(running) == 1
    domain = conns[running[0]].lookupByName(lab.guest)
    patterns = trace_patterns(ET.fromstring(domain.XMLDesc(0)))
    assert {"all_vcpus*", "vm_state_notify"} <= set(patterns)
    # The running QEMU was started with them: libvirt logs each QEMU command line it starts (incoming ones too).
    assert "--trace vm_state_notify" in last_qemu_command_line(lab.qemu_log(running[0]))


def last_qemu_command_line(log_path):
    """The last QEMU command line libvirt wrote into a domain's log (one argument per backslash-continued line)."""
    lines = log_path.read_text(errors="replace").splitlines()
    start = max(index for index, line in enumerate(lines) if line.startswith("/usr/bin/qemu-system"))
    end = next(index for index in range(start, len(lines)) if not lines[index].endswith("\\"))
    return " ".join(line.rstrip("\\ ") for line in lines[start:end + 1])


def _module_json(completed, host):
    assert completed.returncode in (0, 2), completed.stdout + completed.stderr
    text = completed.stdout
    start = text.index("%s | " % host)
    return json.loads(text[text.index("{", start):])


def test_remap_between_the_lab_hosts_simulated_vfs(lab, ansible_adhoc):
    facts = {}
    for host in ("kae-lab-a", "kae-lab-b"):
        read = ansible_adhoc(host, "openeuler.kae.device_info", json.dumps({"sysfs_root": "/var/lib/kae-lab/hosts/%s/sysfs" % host}))
        facts[host] = _module_json(read, host)["devices"]
    # Earlier tests may leave guests holding VFs on either host: choose among VFs free, and alike, on both.
    on_b = dict((d["bdf"], d) for d in facts["kae-lab-b"] if is_free(d))
    free = [d for d in facts["kae-lab-a"] if is_free(d) and d["bdf"] in on_b
            and same_class(d, on_b[d["bdf"]]) and d["numa_node"] == on_b[d["bdf"]]["numa_node"]]
    chosen = [min((d for d in free if d["engine"] == engine and d["numa_node"] == free[0]["numa_node"]), key=lambda d: d["bdf"])
              for engine in ("zip", "hpre", "sec")]
    hostdevs = "".join("<hostdev mode='subsystem' type='pci' managed='no'><driver name='vfio'/><source><address domain='0x%s' "
                       "bus='0x%s' slot='0x%s' function='0x%s'/></source></hostdev>"
                       % tuple(re.split("[:.]", d["bdf"])) for d in chosen)
    guest_xml = "<domain type='qemu'><name>remap-probe</name><devices>%s</devices></domain>" % hostdevs
    src = [dict(d, domain="remap-probe") if d in chosen else d for d in facts["kae-lab-a"]]

    def remap(dst):
        args = json.dumps({"domain_xml": guest_xml, "source_devices": src, "destination_devices": dst})
        completed = ansible_adhoc("kae-lab-a", "openeuler.kae.hostdev_remap", args)
        return dict(_module_json(completed, "kae-lab-a"), failed="kae-lab-a | FAILED!" in completed.stdout)

    # The same addresses are free on the destination: nothing is remapped.
    same = remap(facts["kae-lab-b"])
    assert same["failed"] is False and same["remapped"] is False, same
    assert sorted(same["mapping"]) == sorted(d["bdf"] for d in chosen)
    # Another domain holds those addresses on the destination: free VFs of the same engines are used instead.
    taken = [dict(d, domain="other") if d["bdf"] in same["mapping"] else d for d in facts["kae-lab-b"]]
    moved = remap(taken)
    assert moved["remapped"] is True
    engine_of = dict((d["bdf"], d["engine"]) for d in facts["kae-lab-b"])
    assert all(engine_of[new] == engine_of[old] and new != old for old, new in moved["mapping"].items())
    # No free SEC VF anywhere on the destination: refused, naming what each node lacks.
    no_sec = [dict(d, domain="other") if d["engine"] == "sec" and d["function"] == "vf" else d for d in facts["kae-lab-b"]]
    refused = remap(no_sec)
    assert refused.get("failed") is True
    assert "the destination cannot host guest remap-probe" in refused["msg"] and "lacks sec (0 free of 1 wanted)" in refused["msg"]


def test_restart_puts_the_trace_arguments_on_the_running_qemu(probe, ansible_adhoc, ansible_playbook, tmp_path, lab):
    started = ansible_adhoc(HOST, "ansible.builtin.command", "virsh start %s" % PROBE)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        done = ansible_playbook(role_playbook(tmp_path), "-e", '{"guest_restart": true, "guest_restart_timeout_s": 0}')
        assert done.returncode == 0, done.stdout + done.stderr
        assert "definition updated and guest restarted" in done.stdout
        # The domain's log holds each QEMU start (its command line) and what that QEMU traced: the QEMU started
        # before the role traced runstate_set only; the one the role restarted also prints vm_state_notify.
        log = lab.host_path(HOST, "/var/log/libvirt/qemu/%s.log" % PROBE).read_text()
        starts = log.split("qemu-system-x86_64 \\\n")
        event = re.compile(r"^\d+@\d+\.\d{6}:vm_state_notify ", re.M)
        assert len(starts) >= 3 and not event.search(starts[-2]) and event.search(starts[-1]), starts[-2:]
        state = ansible_adhoc(HOST, "ansible.builtin.command", "virsh domstate %s" % PROBE)
        assert "running" in state.stdout
    finally:
        ansible_adhoc(HOST, "ansible.builtin.command", "virsh destroy %s" % PROBE)


UPSTREAM = '{"guest_define_hostdevs": true, "guest_placement": "none", "guest_hostdev_enable_migration": %s}'


def test_upstream_variant_overrides_are_defined_once_and_removed_with_the_variant(probe, ansible_playbook, tmp_path):
    """libvirt 9.0's QEMU driver keeps <qemu:override> (>= 8.2): the upstream variant's entries, for real."""
    playbook = role_playbook(tmp_path)
    first = ansible_playbook(playbook, "-e", UPSTREAM % "true", "--diff")
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap_changed(first.stdout) == 1
    assert "Validate the predicted definition against libvirt's domain schema" in first.stdout, "the schema accepts it"
    root = probe()
    aliases = sorted(hostdev.find("alias").get("name") for hostdev in root.iter("hostdev"))
    assert aliases == ["ua-kae-hpre-0", "ua-kae-sec-0", "ua-kae-zip-0"]
    assert kae_overrides(root) == dict((alias, [{"name": "enable-migration", "type": "bool", "value": "true"}]) for alias in aliases)
    vfs = hostdev_bdfs(root)
    second = ansible_playbook(playbook, "-e", UPSTREAM % "true")
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap_changed(second.stdout) == 0 and "definition already as requested" in second.stdout
    # Another variant: the same VFs without aliases, and no override entry left.
    switched = ansible_playbook(playbook, "-e", UPSTREAM % "false")
    assert switched.returncode == 0, switched.stdout + switched.stderr
    assert recap_changed(switched.stdout) == 1
    root = probe()
    assert kae_overrides(root) == {} and [hostdev.find("alias") for hostdev in root.iter("hostdev")] == [None] * 3
    assert hostdev_bdfs(root) == vfs


HOLDER = "kae-role-holder"
HOLDER_XML = PROBE_XML.replace(PROBE, HOLDER).replace("<devices>", "<devices>%s")
SYSFS_ROOT = "/var/lib/kae-lab/hosts/%s/sysfs" % HOST
ROOT_PORT = "0000:74:00.0"  # the root port above the simulated ZIP and SEC PFs of node 0


def hostdev_xml(bdf):
    return ("<hostdev mode='subsystem' type='pci' managed='no'><driver name='vfio'/><source><address domain='0x%s' "
            "bus='0x%s' slot='0x%s' function='0x%s'/></source></hostdev>" % tuple(re.split("[:.]", bdf)))


def test_only_free_kae_vfs_are_given_and_each_guest_gets_its_own(probe, ansible_adhoc, ansible_playbook, tmp_path):
    read = ansible_adhoc(HOST, "openeuler.kae.device_info", json.dumps({"sysfs_root": SYSFS_ROOT}))
    devices = _module_json(read, HOST)["devices"]
    held = min(d["bdf"] for d in devices if d["function"] == "vf" and d["engine"] == "zip" and d["domain"] is None)
    holder = define(ansible_adhoc, HOLDER, HOLDER_XML % hostdev_xml(held))
    try:
        for bdf, reason in ((held, "%s is held by domain %s (defined, not running)" % (held, HOLDER)),
                            (ROOT_PORT, "%s is not a KAE VF (vendor 0x19e5, device 0xa121)" % ROOT_PORT),
                            ("0000:3f:00.1", "0000:3f:00.1 does not exist on this host")):
            args = {"domain": PROBE, "sysfs_root": SYSFS_ROOT, "hostdev_xml": hostdev_xml(bdf)}
            refused = ansible_adhoc(HOST, "openeuler.kae.guest_config", json.dumps(args))
            assert "%s | FAILED!" % HOST in refused.stdout, refused.stdout + refused.stderr
            assert reason in _module_json(refused, HOST)["msg"]
        assert hostdev_sources(probe()) == [], "nothing was defined"

        # Two guests in one run: each its own three VFs, none of them the one the holder had; a second run keeps them.
        playbook = role_playbook(tmp_path, domains=[PROBE, HOLDER])
        extra = ["-e", '{"guest_define_hostdevs": true, "guest_placement": "none"}']
        first = ansible_playbook(playbook, *extra)
        assert first.returncode == 0, first.stdout + first.stderr
        probe_vfs, holder_vfs = hostdev_bdfs(probe()), hostdev_bdfs(holder())
        assert len(probe_vfs) == 3 and len(holder_vfs) == 3 and not set(probe_vfs) & set(holder_vfs)
        assert held not in probe_vfs
        again = ansible_playbook(playbook, *extra)
        assert again.returncode == 0, again.stdout + again.stderr
        assert recap_changed(again.stdout) == 0
        assert (hostdev_bdfs(probe()), hostdev_bdfs(holder())) == (probe_vfs, holder_vfs)
    finally:
        ansible_adhoc(HOST, "ansible.builtin.command", "virsh undefine %s" % HOLDER)
