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


# Every bad input is a filter error naming the filter and what was wrong, never another exception.
@pytest.mark.parametrize("args, kwargs, named", [
    ((None, DST), {}, "source log"),
    ((SRC, b"\xff\xfe"), {}, "destination log has no 'all_vcpus_prepared' event"),
    (([{"ts": 1747835912.854818}], DST), {}, "source log to be a dict with 'ts'"),                 # missing key
    (([{"name": "all_vcpus_paused"}], DST), {}, "source log to be a dict with 'ts'"),
    (([{"ts": "1e99999999", "name": "all_vcpus_paused"}], DST), {}, "source log to be a dict with 'ts'"),
    (([{"ts": "\u0661\u0662", "name": "all_vcpus_paused"}], DST), {}, "source log to be a dict with 'ts'"),
    (({"events": "not a list"}, DST), {}, "expected the source log to be the text of a QEMU log"),
    ((SRC, [[DST]]), {}, "expected the destination log to hold lines (strings) or events (dicts)"),
    ((SRC, DST), {"clock_offset_ms": "nan"}, "clock_offset_ms must be a finite number"),
    ((SRC, DST), {"clock_offset_ms": "inf"}, "clock_offset_ms must be a finite number"),
    ((SRC, DST), {"clock_offset_ms": "1e400000000"}, "clock_offset_ms must be a finite number"),
    ((SRC, DST), {"clock_offset_ms": 10 ** 400}, "clock_offset_ms must be a finite number"),
    ((SRC, DST), {"clock_offset_ms": "\u0663"}, "clock_offset_ms must be a finite number"),
    ((SRC, DST), {"clock_offset_ms": "5\x00"}, "clock_offset_ms must be a finite number"),
    ((SRC, DST), {"clock_offset_ms": {"ms": 5}}, "clock_offset_ms must be a finite number"),
    ((SRC, DST), {"profile": ["openeuler"]}, "unknown profile ['openeuler']"),
    ((SRC, DST), {"profile": None}, "unknown profile None"),
    ((SRC, DST), {"all": ["yes"]}, "expected all=true or all=false"),
    ((SRC, DST), {"all": None}, "expected all=true or all=false"),
])
def test_bad_input_is_a_filter_error(args, kwargs, named):
    with pytest.raises(AnsibleFilterError) as caught:
        migration_downtime(*args, **kwargs)
    assert str(caught.value).startswith("openeuler.kae.migration_downtime: ")
    assert named in str(caught.value)


def test_all_refuses_an_earlier_migration_whose_resume_the_offset_puts_before_its_pause():
    src = ["1@1800000100.000000:all_vcpus_prepared", "1@1800000200.000000:all_vcpus_paused",
           "1@1800000300.000000:all_vcpus_prepared", "1@1800000400.000000:all_vcpus_paused"]
    dst = ["2@1800000200.020000:all_vcpus_prepared", "2@1800000400.020000:all_vcpus_prepared"]
    assert [item["downtime_ms"] for item in migration_downtime(src, dst, all=True)] == [20.0, 20.0]
    with pytest.raises(AnsibleFilterError, match=r"before the source paused for the migration at 1800000200.0 \(pause 1 of 2"):
        migration_downtime(src, dst, all=True, clock_offset_ms=25)
