# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's size (lab/kaelab.py): host and guest names, their placement, the record `up` writes and the inventory."""

from __future__ import annotations

import argparse
import json

import pytest

from ansible_collections.openeuler.kae.lab import kaelab


def test_the_default_layout_is_the_two_host_lab():
    layout = kaelab.fleet_layout()
    assert layout == kaelab.DEFAULT_LAYOUT and layout.hosts == kaelab.HOSTS and layout.guests == ()
    expected = [("kae-lab-a", "10.77.231.11", "kaelab-a"), ("kae-lab-b", "10.77.231.12", "kaelab-b")]
    assert [(h.name, h.addr, h.veth) for h in layout.hosts] == expected


def test_guests_spread_over_the_hosts_deterministically():
    layout = kaelab.fleet_layout(3, 4)
    assert [h.name for h in layout.hosts] == ["kae-lab-a", "kae-lab-b", "kae-lab-c"]
    homes = [("kae-fleet-1", "kae-lab-b"), ("kae-fleet-2", "kae-lab-c"), ("kae-fleet-3", "kae-lab-a"), ("kae-fleet-4", "kae-lab-b")]
    assert [(g.name, g.home.name) for g in layout.guests] == homes
    assert all(g.memory_mib == 96 and g.serial_log == "/var/log/libvirt/qemu/%s-serial.log" % g.name for g in layout.guests)
    assert layout == kaelab.fleet_layout(3, 4) and layout != kaelab.fleet_layout(4, 4)


def test_a_light_guest_is_defined_small_with_its_own_initrd_and_serial_log():
    guest = kaelab.fleet_layout(2, 1).guests[0]
    xml = kaelab.guest_xml(guest)
    assert "<name>kae-fleet-1</name>" in xml and "<memory unit='MiB'>96</memory>" in xml and "<vcpu>1</vcpu>" in xml
    assert str(kaelab.FLEET_INITRD) in xml and "/var/log/libvirt/qemu/kae-fleet-1-serial.log" in xml
    assert "<domain type='qemu'>" in xml and "<metadata>" not in xml
    assert "kae-heartbeat seq=$n" in kaelab.FLEET_INIT and "gzip" not in kaelab.FLEET_INIT


def test_the_record_round_trips_and_a_missing_or_broken_one_means_the_default(tmp_path, monkeypatch):
    monkeypatch.setattr(kaelab, "LAYOUT_FILE", tmp_path / "layout.json")
    assert kaelab.recorded_layout() == kaelab.DEFAULT_LAYOUT
    kaelab.record_layout(kaelab.fleet_layout(3, 2))
    assert kaelab.recorded_layout() == kaelab.fleet_layout(3, 2)
    record = json.loads((tmp_path / "layout.json").read_text())
    assert record["guest_homes"] == {"kae-guest": "kae-lab-a", "kae-fleet-1": "kae-lab-b", "kae-fleet-2": "kae-lab-c"}
    (tmp_path / "layout.json").write_text("{not json")
    assert kaelab.recorded_layout() == kaelab.DEFAULT_LAYOUT


def test_the_inventory_lists_the_recorded_hosts_and_nothing_when_down(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(kaelab, "LAYOUT_FILE", tmp_path / "layout.json")
    assert kaelab.main(["inventory", "--list"]) == 0
    assert json.loads(capsys.readouterr().out) == {"_meta": {"hostvars": {}}}
    kaelab.record_layout(kaelab.fleet_layout(3, 4))
    assert kaelab.main(["inventory", "--list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["kae_hypervisors"] == {"hosts": ["kae-lab-a", "kae-lab-b", "kae-lab-c"],
                                         "vars": {"kae_lab_fleet_guests": ["kae-fleet-1", "kae-fleet-2", "kae-fleet-3", "kae-fleet-4"]}}
    sysfs = str(kaelab.STATE / "hosts" / "kae-lab-a" / "sysfs")
    assert listed["_meta"]["hostvars"]["kae-lab-a"] == {"ansible_host": "10.77.231.11", "kae_sysfs_root": sysfs,
                                                        "kae_lab_home_guests": ["kae-guest", "kae-fleet-3"]}
    assert kaelab.main(["inventory", "--host", "kae-lab-c"]) == 0 and json.loads(capsys.readouterr().out) == {}


@pytest.mark.parametrize("argv, message", [
    (["up", "--hosts", "1"], "--hosts must be from 2 to 8, got 1"),
    (["up", "--hosts", "9"], "--hosts must be from 2 to 8, got 9"),
    (["up", "--guests", "-1"], "--guests must be from 0 to 16, got -1"),
    (["up", "--guests", "many"], "--guests must be a whole number from 0 to 16, got 'many'"),
])
def test_sizes_out_of_range_are_refused_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit):
        kaelab.main(argv)
    assert message in capsys.readouterr().err


def test_count_accepts_the_bounds():
    parse = kaelab.count(2, 8, "--hosts")
    assert (parse("2"), parse("8")) == (2, 8)
    with pytest.raises(argparse.ArgumentTypeError):
        parse("2.5")
