# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The guest role's hostdev.xml.j2 is the one renderer of KAE hostdevs: render it and parse what guest_config reads."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx

TEMPLATE = Path(__file__).resolve().parents[4] / "roles" / "guest" / "templates" / "hostdev.xml.j2"


def render(vfs, managed=False, migration=True):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["bool"] = boolean  # what Ansible's bool filter does for these values
    template = env.from_string(TEMPLATE.read_text())
    return template.render(guest_hostdev_vfs=vfs, guest_hostdev_managed=managed, guest_hostdev_migration_attr=migration)


def test_renders_one_hostdev_per_vf_from_bdfs_and_device_dicts():
    text = render(["0000:31:00.1", {"bdf": "0000:7D:01.7", "engine": "hpre"}, "b5:00.2"])
    wanted = dx.parse_hostdev_fragments(text)
    assert [bdf for _e, bdf in wanted] == ["0000:31:00.1", "0000:7d:01.7", "0000:b5:00.2"]
    element = wanted[0][0]
    assert element.attrib == {"mode": "subsystem", "type": "pci", "managed": "no", "migration": "on"}
    assert element.find("driver").attrib == {"name": "vfio"}
    assert element.find("source/address").attrib == {"domain": "0x0000", "bus": "0x31", "slot": "0x00", "function": "0x1"}


@pytest.mark.parametrize("managed, migration, attrs", [
    (True, True, {"managed": "yes", "migration": "on"}),
    ("no", False, {"managed": "no"}),
    (False, "false", {"managed": "no"}),
])
def test_release_variants(managed, migration, attrs):
    element = dx.parse_hostdev_fragments(render(["0000:31:00.1"], managed, migration))[0][0]
    assert element.attrib == dict({"mode": "subsystem", "type": "pci"}, **attrs)


def test_no_vfs_renders_no_hostdev():
    assert dx.parse_hostdev_fragments(render([])) == []


@pytest.mark.parametrize("bad, named", [("not-a-bdf", "value='not-a-bdf'"), ("0000:31:00", "value='0000:31:00'"),
                                        ("0000:zz:00.1", "bus='0xzz'")])
def test_a_bad_address_is_refused_by_name(bad, named):
    with pytest.raises(dx.DomainXMLError, match=named):
        dx.parse_hostdev_fragments(render([bad]))


def test_rendered_hostdevs_merge_into_a_domain_unchanged_on_a_second_pass():
    root = dx.parse_domain("<domain type='kvm'><name>vm</name><devices><disk type='file'/></devices></domain>")
    wanted = dx.parse_hostdev_fragments(render(["0000:31:00.1", "0000:76:00.1"]))
    assert dx.set_kae_hostdevs(root, wanted, lambda bdf: True)["added"] == ["0000:31:00.1", "0000:76:00.1"]
    again = dx.parse_hostdev_fragments(render(["0000:31:00.1", "0000:76:00.1"]))
    assert dx.set_kae_hostdevs(root, again, lambda bdf: True) == {"added": [], "removed": [], "updated": []}
