# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.filter.evacuation_batches import FilterModule as BatchesFilters
from ansible_collections.openeuler.kae.plugins.filter.evacuation_plan import FilterModule as PlanFilters
from ansible_collections.openeuler.kae.tests.unit.plugins.module_utils.test_placement import facts, one_of_each, room

evacuation_batches = BatchesFilters().filters()["evacuation_batches"]
evacuation_plan = PlanFilters().filters()["evacuation_plan"]


def test_batches_filter_uses_the_limits():
    plan = [{"guest": "vm%d" % index, "source": "src", "destination": "d%d" % index} for index in range(3)]
    assert [len(batch) for batch in evacuation_batches(plan)] == [2, 1]
    assert [len(batch) for batch in evacuation_batches(plan, per_source=3)] == [3]


def test_batches_filter_names_itself_and_the_bad_limit():
    with pytest.raises(AnsibleFilterError, match=r"^openeuler.kae.evacuation_batches: per_destination must be at least 1"):
        evacuation_batches([], per_destination=0)


def test_plan_filter_plans_the_kae_guests_of_the_host():
    held = dict((bdf, "db1") for bdf in one_of_each())
    guests = [{"name": "db1", "host": "src", "memory_mib": 1024, "vcpus": 1, "pinned_node": None, "vfs": one_of_each()}]
    plan = evacuation_plan({"src": facts(taken=held), "dst": facts()}, host="src", guests=guests, capacity=room(["dst"]))
    assert [(item["guest"], item["destination"]) for item in plan["placements"]] == [("db1", "dst")]


def test_plan_filter_requires_host_guests_and_capacity():
    with pytest.raises(AnsibleFilterError, match="host, guests and capacity are required"):
        evacuation_plan({"src": facts()}, host="src")


def test_plan_filter_passes_on_placement_errors():
    # A VF the facts give to another domain cannot be a guest's: place_guests refuses, named by this filter.
    held = {one_of_each()[0]: "other"}
    guests = [{"name": "db1", "host": "src", "memory_mib": 1024, "vcpus": 1, "pinned_node": None, "vfs": [one_of_each()[0]]}]
    with pytest.raises(AnsibleFilterError, match="^openeuler.kae.evacuation_plan: .*belongs to domain other"):
        evacuation_plan({"src": facts(taken=held), "dst": facts()}, host="src", guests=guests, capacity=room(["dst"]))


def test_plan_filter_refuses_a_non_boolean_all_guests():
    with pytest.raises(AnsibleFilterError, match="all_guests must be true or false"):
        evacuation_plan({"src": facts()}, host="src", guests=[], capacity={}, all_guests="false")
