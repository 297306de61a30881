# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.plugins.filter.migration_downtime import FilterModule, migration_downtime

SRC = "16465@1747835912.854818:all_vcpus_paused"
DST = "19688@1747835912.982336:all_vcpus_prepared"
SRC_EVENTS = [{"ts": 1747835912.854818, "tid": 16465, "name": "all_vcpus_paused", "args": ""}]


def test_is_registered_under_its_name():
    assert FilterModule().filters() == {"migration_downtime": migration_downtime}


def test_published_sample_from_text_and_from_module_events():
    assert migration_downtime(SRC, DST)["downtime_ms"] == 127.518
    assert migration_downtime({"events": SRC_EVENTS}, [DST])["downtime_ms"] == 127.518


def test_options_reach_the_core():
    result = migration_downtime(SRC, DST, profile="openeuler", clock_offset_ms=7.518)
    assert result["downtime_ms"] == 120.0
    assert result["clock_offset_ms"] == 7.518


@pytest.mark.parametrize("flag", [True, "yes", "true"])
def test_all_lists_every_migration(flag):
    src = [SRC, "16465@1747835999.000000:all_vcpus_paused"]
    dst = [DST, "19688@1747835999.100000:all_vcpus_prepared"]
    assert [item["downtime_ms"] for item in migration_downtime(src, dst, all=flag)] == [127.518, 100.0]


def test_core_errors_become_filter_errors_naming_the_filter():
    with pytest.raises(AnsibleFilterError, match=r"^openeuler.kae.migration_downtime: the source log has no 'all_vcpus_paused' event"):
        migration_downtime("", DST, profile="openeuler")
    with pytest.raises(AnsibleFilterError, match=r"^openeuler.kae.migration_downtime: the destination resumed .* 127.518 ms before"):
        migration_downtime("1@1747835912.982336:all_vcpus_paused", "2@1747835912.854818:all_vcpus_prepared")


def test_bad_all_flag_is_named():
    with pytest.raises(AnsibleFilterError, match=r"^openeuler.kae.migration_downtime: expected all=true or all=false, got 'maybe'"):
        migration_downtime(SRC, DST, all="maybe")
