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


@pytest.mark.parametrize("value, integer, expected", [
    ("4", True, 4), (" 12 ", True, 12), ("-1", True, -1), ("2.5", False, 2.5), ("10", False, 10),
    (4, True, 4), (2.5, False, 2.5), (True, True, True), (None, False, None),
])
def test_from_text_spells_out_ascii_decimals_only(value, integer, expected):
    result = _validate.from_text(value, "num_vfs", integer=integer)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("value", ["\u0664", "1\u0662", "\uff14", "1e3", "1e100000000", "inf", "nan", "0x10", "", "4 VFs", "2.5", "1" * 19])
def test_from_text_refuses_other_text(value):
    with pytest.raises(InputError, match=r"^num_vfs must be a whole number written with the digits 0-9 \(no exponent\), got "):
        _validate.from_text(value, "num_vfs", integer=True)


def test_a_number_too_long_to_print_is_still_named():
    with pytest.raises(InputError, match=r"^num_vfs must be at most 65535, got a 16610-bit number$"):
        _validate.number(10 ** 5000, "num_vfs", maximum=65535, integer=True)
