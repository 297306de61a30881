# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""meta/runtime.yml's action groups against the modules' documented options.

ansible-core hands a group's module_defaults to every module of the group, and a module fails on an option it
does not have ("Unsupported parameters"), so a group is only usable for options all its members take.
validate-modules keeps each module's documentation equal to its argument_spec, so the documented options
(with the collection's doc fragments) are the accepted ones.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

COLLECTION = Path(__file__).resolve().parents[3]
MODULES = sorted(path.stem for path in (COLLECTION / "plugins" / "modules").glob("*.py") if path.stem != "__init__")
# The options each group exists for (documented in the README's "Setting shared options once").
GROUP_OPTIONS = {"host": {"sysfs_root", "uri"}, "libvirt": {"uri"}, "all": set()}


def groups():
    """{group: set of module names}, with metadata.extend_group resolved."""
    raw = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())["action_groups"]

    def members(name):
        found = set()
        for entry in raw[name]:
            if isinstance(entry, dict):
                for extended in entry["metadata"].get("extend_group", []):
                    found |= members(extended.split("openeuler.kae.")[-1])
            else:
                found.add(entry)
        return found

    return {name: members(name) for name in raw}


def module_doc(module):
    """MODULE's DOCUMENTATION as parsed YAML (read from the file: the module is not imported)."""
    source = (COLLECTION / "plugins" / "modules" / (module + ".py")).read_text()
    return yaml.safe_load(next(node.value.value for node in ast.parse(source).body
                               if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DOCUMENTATION"))


def documented_options(module):
    """Option names of MODULE's DOCUMENTATION, those of the collection's doc fragments included."""
    doc = module_doc(module)
    options = set(doc.get("options") or {})
    for name in doc.get("extends_documentation_fragment", []):
        fragment_file, _dot, variable = name.split("openeuler.kae.")[-1].partition(".")
        fragment = importlib.import_module("ansible_collections.openeuler.kae.plugins.doc_fragments." + fragment_file)
        options |= set(yaml.safe_load(getattr(fragment.ModuleDocFragment, variable or "DOCUMENTATION")).get("options") or {})
    return options


def test_all_holds_every_module_and_nothing_else():
    assert sorted(groups()["all"]) == MODULES


def test_the_groups_are_those_documented():
    assert set(groups()) == set(GROUP_OPTIONS)


@pytest.mark.parametrize("group", sorted(GROUP_OPTIONS))
def test_every_member_takes_the_options_of_its_group(group):
    lacking = {module: sorted(GROUP_OPTIONS[group] - documented_options(module)) for module in groups()[group]}
    assert {module: missing for module, missing in lacking.items() if missing} == {}


@pytest.mark.parametrize("group, option", [("host", "sysfs_root"), ("libvirt", "uri")])
def test_every_module_with_the_option_is_in_its_group(group, option):
    """A module that takes a shared option gets it from the group too."""
    assert sorted(module for module in MODULES if option in documented_options(module)) == sorted(groups()[group])


def test_shared_options_are_documented_by_the_fragments_only():
    """No module documents uri or sysfs_root itself: the text lives once, in plugins/doc_fragments."""
    for module in MODULES:
        assert not {"uri", "sysfs_root"} & set(module_doc(module).get("options") or {}), module
