# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.filter.migration_record import FilterModule, migration_record


def test_registered_under_its_name():
    assert FilterModule().filters()["migration_record"] is migration_record


def test_builds_from_module_results():
    src = {"events": [{"ts": 1747835912.854818, "tid": 1, "name": "all_vcpus_paused", "args": ""}]}
    dst = {"events": [{"ts": 1747835912.982336, "tid": 2, "name": "all_vcpus_prepared", "args": ""}]}
    record = migration_record({"guest": "g", "source": "a", "destination": "b", "src_events": src, "dst_events": dst})
    assert record["downtime_ms"] == 127.518 and record["status"] == "passed"


def test_bad_steps_name_the_filter():
    with pytest.raises(AnsibleFilterError, match=r"^openeuler.kae.migration_record: unknown step key\(s\) guests"):
        migration_record({"guests": "g", "source": "a", "destination": "b"})
