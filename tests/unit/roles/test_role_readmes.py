# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each role's README, which Galaxy requires and shows: its options by reference, its facts, an example that applies it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
ROLES = sorted(path.name for path in (REPO / "roles").iterdir() if path.is_dir())


def readme(role):
    path = REPO / "roles" / role / "README.md"
    assert path.is_file(), "role %s has no README.md (Galaxy's importer refuses the collection)" % role
    return path.read_text()


def yaml_blocks(text):
    return [yaml.safe_load(block) for block in re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)]


def applied_roles(plays):
    return [entry["role"] for play in plays for entry in play.get("roles", [])]


@pytest.mark.parametrize("role", ROLES)
def test_readme_points_at_the_argument_specs(role):
    assert "ansible-doc -t role openeuler.kae.%s" % role in readme(role)


@pytest.mark.parametrize("role", ROLES)
def test_readme_example_applies_the_role_with_its_own_options_only(role):
    examples = [plays for plays in yaml_blocks(readme(role)) if "openeuler.kae.%s" % role in applied_roles(plays)]
    assert examples, "the README of role %s has no example play applying it" % role
    for plays in examples:
        for play in plays:
            for entry in play.get("roles", []):
                prefix = entry["role"].rsplit(".", 1)[-1] + "_"
                assert [name for name in entry.get("vars", {}) if not name.startswith(prefix)] == []


@pytest.mark.parametrize("role", ROLES)
def test_readme_lists_the_facts_its_argument_spec_documents(role):
    """The facts other plays read are named in both places, so the two cannot drift apart unnoticed."""
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    description = " ".join(specs["argument_specs"]["main"]["description"])
    facts_sentence = re.search(r"(?:Facts? it sets[^:]*:|Sets the facts? )(.*?)(?:\.\s|$)", description, re.S)
    assert facts_sentence, "the argument spec of role %s does not say which facts it sets" % role
    facts = set(re.findall(r"C\((%s_\w+)\)" % role, facts_sentence.group(1)))
    assert facts
    table = set(re.findall(r"^\| `(\w+)` \|", readme(role), re.M))
    assert facts <= table, "facts in the argument spec of role %s but not in its README: %s" % (role, sorted(facts - table))
