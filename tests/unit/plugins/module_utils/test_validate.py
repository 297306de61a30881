# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils import _validate
from ansible_collections.openeuler.kae.plugins.module_utils._validate import InputError


@pytest.mark.parametrize("value, expected", [
    ("0000:75:00.1", "0000:75:00.1"),
    ("0000:B4:1F.7", "0000:b4:1f.7"),
    (" 0000:75:00.0 ", "0000:75:00.0"),
])
def test_bdf_accepts_kernel_form(value, expected):
    assert _validate.bdf(value, "pf") == expected


@pytest.mark.parametrize("value", [
    "75:00.1",                 # no PCI domain
    "0000:75:00.8",            # function out of range
    "0000:75:20.0",            # slot out of range
    "0000:75:00.1/../../x",    # path pieces
    "0000:７5:00.1",           # non-ASCII digit
    "0000:75:00.1\x00",
    "",
    7501,
    None,
])
def test_bdf_refuses_anything_else(value):
    with pytest.raises(InputError, match="^pf must"):
        _validate.bdf(value, "pf")


def test_bdf_message_names_form_and_value():
    with pytest.raises(InputError) as info:
        _validate.bdf("75:00.1", "pf")
    assert "DDDD:BB:SS.F" in str(info.value) and "'75:00.1'" in str(info.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_number_refuses_non_finite(value):
    with pytest.raises(InputError, match="timeout_s must be a finite number"):
        _validate.number(value, "timeout_s")


@pytest.mark.parametrize("value", [True, "5", b"5", None, [5]])
def test_number_refuses_non_numbers(value):
    with pytest.raises(InputError, match="numa_node must be a whole number"):
        _validate.number(value, "numa_node", integer=True)


def test_number_range_and_integer():
    assert _validate.number(5, "x", minimum=0, maximum=10, integer=True) == 5
    assert _validate.number(2.5, "x") == 2.5
    with pytest.raises(InputError, match="at most 4294967295"):
        _validate.number(2 ** 64, "max_downtime_ms", maximum=2 ** 32 - 1, integer=True)
    with pytest.raises(InputError, match="at least -1"):
        _validate.number(-2, "numa_node", minimum=-1, integer=True)
    with pytest.raises(InputError, match="whole number"):
        _validate.number(1.5, "count", integer=True)


def test_positive():
    assert _validate.positive(0.5, "timeout_s") == 0.5
    with pytest.raises(InputError, match="greater than 0, got 0"):
        _validate.positive(0, "timeout_s")


@pytest.mark.parametrize("value", ["kae-guest", "guest 1", "ü-vm", "a.b"])
def test_domain_name_accepts(value):
    assert _validate.domain_name(value) == value


@pytest.mark.parametrize("value, problem", [
    ("../../etc/passwd", "contains '/'"),
    (".hidden", "starts with '.'"),
    ("a\nb", "control character"),
    ("a\x00b", "NUL byte"),
    ("x" * 201, "longer than 200"),
    (" vm", "white space"),
    ("", "must not be empty"),
    (5, "must be a string"),
])
def test_domain_name_refuses(value, problem):
    with pytest.raises(InputError, match=problem):
        _validate.domain_name(value)


@pytest.mark.parametrize("value", ["kae-lab-b", "10.77.231.3", "host.example.org", "[fd00::1]"])
def test_host_name_accepts(value):
    assert _validate.host_name(value, "host") == value


@pytest.mark.parametrize("value", ["b/system?socket=/x", "b?x=1", "b#frag", "user@b", "b:22", "-b", "", "a..b"])
def test_host_name_refuses_uri_pieces(value):
    with pytest.raises(InputError, match="^host must"):
        _validate.host_name(value, "host")


def test_mapping_and_sequence():
    assert _validate.mapping({}, "m") == {}
    assert _validate.sequence([], "s") == []
    with pytest.raises(InputError, match="m must be a mapping, got list"):
        _validate.mapping([], "m")
    with pytest.raises(InputError, match="s must be a list, got str"):
        _validate.sequence("x", "s")


def test_a_number_too_long_to_print_is_still_named():
    with pytest.raises(InputError, match=r"^num_vfs must be at most 65535, got a 16610-bit number$"):
        _validate.number(10 ** 5000, "num_vfs", maximum=65535, integer=True)


@pytest.mark.parametrize("value, integer", [
    (100, True), ("100", True), (" 100 ", True), ("-3", True), ("7.0", True), (None, True), ([1], True),
    (2.5, False), ("2.5", False), ("1e3", False), (".5", False), ("-1E-3", False), (10 ** 300, False),
])
def test_number_text_problem_lets_ordinary_numbers_through(value, integer):
    assert _validate.number_text_problem(value, "timeout_s", integer) is None


@pytest.mark.parametrize("value, integer, expected", [
    ("1e99999999", True, "max_downtime_ms must be a whole number written with the digits 0-9, got '1e99999999'"),
    ("1e3", True, "max_downtime_ms must be a whole number written with the digits 0-9, got '1e3'"),
    ("inf", True, "max_downtime_ms must be a whole number written with the digits 0-9, got 'inf'"),
    (float("inf"), True, "max_downtime_ms must be a whole number, got inf"),
    ("\u0661\u0660\u0660", True, "max_downtime_ms must be a whole number written with the digits 0-9, got '\u0661\u0660\u0660'"),
    ("1" * 31, True, "max_downtime_ms must be a whole number written with the digits 0-9"),
    ("nan", False, "max_downtime_ms must be a finite number written with the digits 0-9 (such as 2.5 or 1e3), got 'nan'"),
    ("1e1000", False, "max_downtime_ms must be a finite number written with the digits 0-9"),
    (float("nan"), False, "max_downtime_ms must be a finite number, got nan"),
    (10 ** 400, False, "max_downtime_ms must be a finite number, got a whole number of 401 digits that no float holds"),
    ("12\x00", False, "max_downtime_ms must be a finite number written with the digits 0-9"),
])
def test_number_text_problem_refuses_what_no_conversion_should_see(value, integer, expected):
    assert _validate.number_text_problem(value, "max_downtime_ms", integer).startswith(expected)


def test_screen_number_options_types_every_number_raw_only_when_one_is_bad():
    spec = {"count": {"type": "int", "default": 1}, "ratio": {"type": "float"}, "name": {"type": "str"}}
    assert _validate.screen_number_options({"count": "3", "ratio": 0.5}, spec) == (spec, None)
    assert _validate.screen_number_options(None, spec) == (spec, None)
    screened, problem = _validate.screen_number_options({"count": "3", "ratio": "inf"}, spec)
    assert problem == "ratio must be a finite number written with the digits 0-9 (such as 2.5 or 1e3), got 'inf'"
    assert screened == {"count": {"type": "raw", "default": 1}, "ratio": {"type": "raw"}, "name": {"type": "str"}}
    assert spec["count"]["type"] == "int"
