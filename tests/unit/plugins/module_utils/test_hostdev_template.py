# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The guest role's hostdev.xml.j2 is the one renderer of KAE hostdevs: render it as the role does and parse what guest_config reads.

The template is rendered by ansible-core's own ``ansible.builtin.template`` lookup (the role's
``lookup('ansible.builtin.template', 'hostdev.xml.j2', template_vars=...)``), with its Jinja2 environment, filters
and tests, in a helper process that has Ansible's collection loader installed (pytest imports this collection
without it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _domain_xml as dx

REPO = Path(__file__).resolve().parents[4]
TEMPLATE = REPO / "roles" / "guest" / "templates" / "hostdev.xml.j2"
COLLECTIONS = REPO / ".collections"
QEMU = "{%s}" % dx.QEMU_NS

# Reads one JSON object of template variables per line, answers one JSON line: {"text": ...} or {"error": ...}.
RENDERER = r"""
import json, sys
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=[sys.argv[2]])._install()
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import lookup_loader
from ansible.template import Templar
loader = DataLoader()
lookup = lookup_loader.get("ansible.builtin.template", loader=loader, templar=Templar(loader=loader))
for line in sys.stdin:
    try:
        answer = {"text": lookup.run([sys.argv[1]], variables={}, template_vars=json.loads(line))[0]}
    except Exception as exc:
        answer = {"error": "%s: %s" % (type(exc).__name__, exc)}
    print(json.dumps(answer), flush=True)
"""


class Renderer:
    """A helper process rendering hostdev.xml.j2 through Ansible's template lookup."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", RENDERER, str(TEMPLATE), str(COLLECTIONS)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def __call__(self, vfs, managed=False, migration=True, enable_migration=False):
        """The rendered text; raises RenderError with Ansible's message when the template refuses."""
        variables = {"guest_hostdev_vfs": vfs, "guest_hostdev_managed": managed, "guest_hostdev_migration_attr": migration,
                     "guest_hostdev_enable_migration": enable_migration}
        self.proc.stdin.write(json.dumps(variables) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            raise RenderError(answer["error"])
        return answer["text"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class RenderError(Exception):
    """Ansible refused to render the template."""


@pytest.fixture(scope="module")
def render():
    renderer = Renderer()
    yield renderer
    renderer.close()


HOSTDEV_ATTRS = {"mode", "type", "managed", "migration"}
ADDRESS_ATTRS = {"domain", "bus", "slot", "function"}


def shape(text):
    """Every element and attribute the rendered text holds, as (path, sorted attribute names) pairs."""
    wrapper = ET.fromstring("<r>%s</r>" % text)
    found = []

    def walk(element, path):
        here = path + "/" + element.tag.replace(QEMU, "qemu:")
        found.append((here, tuple(sorted(element.attrib))))
        for child in element:
            walk(child, here)
    for element in wrapper:
        walk(element, "")
    return found


def expected_shape(count, migration=False, aliases=False):
    hostdev = ("/hostdev", tuple(sorted({"mode", "type", "managed"} | ({"migration"} if migration else set()))))
    one = [hostdev, ("/hostdev/driver", ("name",)), ("/hostdev/source", ()),
           ("/hostdev/source/address", tuple(sorted(ADDRESS_ATTRS)))]
    if aliases:
        one.append(("/hostdev/alias", ("name",)))
    result = one * count
    if aliases and count:
        result.append(("/qemu:override", ()))
        result += [("/qemu:override/qemu:device", ("alias",)), ("/qemu:override/qemu:device/qemu:frontend", ()),
                   ("/qemu:override/qemu:device/qemu:frontend/qemu:property", ("name", "type", "value"))] * count
    return result


def test_renders_one_hostdev_per_vf_from_bdfs_and_device_dicts(render):
    text = render(["0000:31:00.1", {"bdf": "0000:7D:01.7", "engine": "hpre"}, "0000:b5:00.2"])
    wanted = dx.parse_hostdev_fragments(text).hostdevs
    assert [bdf for _e, bdf in wanted] == ["0000:31:00.1", "0000:7d:01.7", "0000:b5:00.2"]
    element = wanted[0][0]
    assert element.attrib == {"mode": "subsystem", "type": "pci", "managed": "no", "migration": "on"}
    assert element.find("driver").attrib == {"name": "vfio"}
    assert element.find("source/address").attrib == {"domain": "0x0000", "bus": "0x31", "slot": "0x00", "function": "0x1"}
    assert shape(text) == expected_shape(3, migration=True)


@pytest.mark.parametrize("managed, migration, attrs", [
    (True, True, {"managed": "yes", "migration": "on"}),
    ("no", False, {"managed": "no"}),
    (False, "false", {"managed": "no"}),
])
def test_release_variants(render, managed, migration, attrs):
    fragment = dx.parse_hostdev_fragments(render(["0000:31:00.1"], managed, migration))
    assert fragment.hostdevs[0][0].attrib == dict({"mode": "subsystem", "type": "pci"}, **attrs)
    assert fragment.hostdevs[0][0].find("alias") is None and fragment.overrides == []


def test_upstream_variant_sets_enable_migration_for_each_hostdev_alias(render):
    vfs = [{"bdf": "0000:75:00.1", "engine": "zip"}, {"bdf": "0000:79:00.1", "engine": "hpre"},
           {"bdf": "0000:75:00.2", "engine": "zip"}, "0000:76:00.1"]
    text = render(vfs, managed=True, migration=False, enable_migration=True)
    assert shape(text) == expected_shape(4, aliases=True)
    fragment = dx.parse_hostdev_fragments(text)
    aliases = [element.find("alias").get("name") for element, _bdf in fragment.hostdevs]
    assert aliases == ["ua-kae-zip-0", "ua-kae-hpre-0", "ua-kae-zip-1", "ua-kae-vf-0"]
    assert [device.get("alias") for device in fragment.overrides] == aliases
    for device in fragment.overrides:
        assert [prop.attrib for prop in device.findall(QEMU + "frontend/" + QEMU + "property")] == [
            {"name": "enable-migration", "type": "bool", "value": "true"}]
    assert all(element.get("managed") == "yes" and "migration" not in element.attrib for element, _bdf in fragment.hostdevs)


def test_upstream_variant_without_vfs_renders_no_override(render):
    # Ansible gives None for a template that renders only white space; the role turns it into ''.
    assert (render([], enable_migration=True, migration=False) or "").strip() == ""


def test_variants_exclude_each_other(render):
    with pytest.raises(RenderError, match="guest_hostdev_migration_attr .* and guest_hostdev_enable_migration .* exclude each other"):
        render(["0000:31:00.1"], migration=True, enable_migration=True)


def test_no_vfs_renders_no_hostdev(render):
    assert dx.parse_hostdev_fragments(render([]) or "") == ([], [])


HOSTILE_ADDRESSES = [
    "0000:31:00.1' migration='off",
    "0000:31:00.1'/><hostdev mode='subsystem' type='pci'><source><address bus='0x41'/></source></hostdev><x a='",
    "0000:31:00.1\n",
    "0000:31:00.1 ",
    " 0000:31:00.1",
    "<hostdev/>",
    "0000:31:00.1&amp;",
    "0000:31:00.8",
    "0000:31:20.1",
    "31:00.1",
    "0000:31:00",
    "0000:zz:00.1",
    "0000:31:00.\u0661",
    "",
    None,
    5,
    ["0000:31:00.1"],
    {"bdf": "0000:31:00.1' managed='yes"},
    {"engine": "zip"},
]


@pytest.mark.parametrize("hostile", HOSTILE_ADDRESSES, ids=range(len(HOSTILE_ADDRESSES)))
@pytest.mark.parametrize("variant", [{"migration": True}, {"migration": False, "enable_migration": True}], ids=["openeuler", "upstream"])
def test_a_value_that_is_not_a_bdf_is_refused_by_name(render, hostile, variant):
    with pytest.raises(RenderError, match=r"VF 2 of guest_hostdev_vfs is .*not a PCI address DDDD:BB:SS\.F"):
        render(["0000:31:00.1", hostile], **variant)


@pytest.mark.parametrize("vf, managed", [
    ({"bdf": "0000:31:00.1", "engine": "zip' name='x"}, True),
    ({"bdf": "0000:31:00.1", "engine": "<qemu:device alias='ua-kae-zip-0'/>"}, "yes' x='1"),
    ({"bdf": "0000:31:00.1", "engine": "zip", "numa_node": "'/><x/>"}, "<x/>"),
])
def test_other_hostile_values_add_no_element_or_attribute(render, vf, managed):
    for variant in ({"migration": True}, {"migration": False, "enable_migration": True}):
        text = render([vf], managed=managed, **variant)
        assert shape(text) == expected_shape(1, migration=variant["migration"], aliases=not variant["migration"])
        fragment = dx.parse_hostdev_fragments(text)
        assert [bdf for _e, bdf in fragment.hostdevs] == ["0000:31:00.1"]
        assert fragment.hostdevs[0][0].get("managed") in ("yes", "no")
        if not variant["migration"]:
            assert fragment.hostdevs[0][0].find("alias").get("name") in ("ua-kae-zip-0", "ua-kae-vf-0")


def test_rendered_hostdevs_merge_into_a_domain_unchanged_on_a_second_pass(render):
    root = dx.parse_domain("<domain type='kvm'><name>vm</name><devices><disk type='file'/></devices></domain>")
    for enable_migration in (True, False):
        text = render(["0000:31:00.1", "0000:76:00.1"], migration=not enable_migration, enable_migration=enable_migration)
        dx.set_kae_hostdevs(root, dx.parse_hostdev_fragments(text).hostdevs, lambda bdf: True)
        dx.set_kae_overrides(root, dx.parse_hostdev_fragments(text).overrides)
        again = dx.parse_hostdev_fragments(text)
        assert dx.set_kae_hostdevs(root, again.hostdevs, lambda bdf: True) == {"added": [], "removed": [], "updated": []}
        assert dx.set_kae_overrides(root, again.overrides) == {"added": [], "removed": [], "updated": []}
    # The openEuler variant came last: no alias, no override left.
    assert root.find("devices/hostdev/alias") is None and root.find(dx.QEMU_OVERRIDE) is None
