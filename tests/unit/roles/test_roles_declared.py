# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each role takes only the variables its argument spec declares.

A role that reads the lab's inventory variables (kae_lab, kae_sysfs_root) works only with an inventory shaped like
the lab's; a fleet playbook sets the role's own options instead, which the playbook kae_migrate.yml maps from its
inventory. One test per role, so that a failure names the role it belongs to.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from jinja2 import Environment, meta

REPO = Path(__file__).resolve().parents[3]
ROLES = sorted(path.name for path in (REPO / "roles").iterdir() if path.is_dir())
INVENTORY_NAMES = re.compile(r"\bkae_(?:lab|sysfs_root)\b")
# Variables Ansible itself provides to every task; a default may use them.
ANSIBLE_VARIABLES = {"playbook_dir", "inventory_hostname", "omit", "now"}


class AnyName(dict):
    """Filters and tests by any name: only the variables a template reads matter here, not what it calls."""

    def __contains__(self, name):
        return True

    def get(self, name, default=None):
        return super().get(name) or (lambda *args, **kwargs: None)


def template_environment():
    environment = Environment()
    environment.filters = AnyName(environment.filters)
    environment.tests = AnyName(environment.tests)
    return environment


def role_files(role):
    return sorted(path for path in (REPO / "roles" / role).rglob("*") if path.is_file())


def options(role):
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["options"]


def defaults(role):
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text()) or {}


def test_every_role_is_checked():
    assert set(ROLES) >= {"host", "guest", "migration", "report"}


@pytest.mark.parametrize("role", ROLES)
def test_no_role_file_names_the_lab_inventory_variables(role):
    mentions = []
    for path in role_files(role):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if INVENTORY_NAMES.search(line):
                mentions.append("%s:%d: %s" % (path.relative_to(REPO), number, line.strip()))
    assert mentions == [], "role %s reads inventory variables instead of its own options:\n%s" % (role, "\n".join(mentions))


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_a_declared_option(role):
    assert sorted(set(defaults(role)) - set(options(role))) == []


@pytest.mark.parametrize("role", ROLES)
def test_defaults_refer_only_to_the_roles_own_options(role):
    declared = set(options(role)) | ANSIBLE_VARIABLES
    environment = template_environment()
    foreign = {}
    for name, value in defaults(role).items():
        if isinstance(value, str) and "{{" in value:
            used = meta.find_undeclared_variables(environment.parse(value)) - declared
            if used:
                foreign[name] = sorted(used)
    assert foreign == {}, "role %s defaults read variables that are not its options: %s" % (role, foreign)


@pytest.mark.parametrize("role", ROLES)
def test_option_defaults_are_plain_values_of_their_type(role):
    """ansible-doc and antsibull-docs show the default as it is written; a template there is not a bool."""
    templated_bools = sorted(name for name, spec in options(role).items()
                             if spec.get("type") == "bool" and "default" in spec and not isinstance(spec["default"], bool))
    assert templated_bools == []
