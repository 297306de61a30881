# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""Checks of values at the edge (module options, filter arguments, facts handed in from YAML).

Each check returns the value in its canonical form or raises InputError with one sentence that names the
option, says what form was expected and shows what was given. Nothing here touches the system, so a module
or filter runs every check before it reads or writes anything.
"""

from __future__ import annotations

import math
import re
import sys

# A PCI address as the kernel names it under /sys/bus/pci/devices: domain, bus, slot (0-0x1f), function (0-7).
_BDF_RE = re.compile(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[01][0-9a-fA-F]\.[0-7]")
# A host name (RFC 1123 labels) or an IPv4 address; an IPv6 literal is written in brackets.
_HOST_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]")
# libvirt refuses '/' in a domain name; control characters and a leading dot make unsafe file names.
_DOMAIN_NAME_MAX = 200
BDF_FORM = "DDDD:BB:SS.F such as 0000:75:00.1"
# Numbers written as text: ASCII digits only, and short, so that no conversion meets a huge exponent or a digit of
# another script. ansible-core's own int conversion hangs on '1e99999999' and raises on 'inf'.
_INTEGER_TEXT_RE = re.compile(r"\s*[+-]?[0-9]{1,30}(?:\.0*)?\s*")
_LARGEST_FLOAT = int(sys.float_info.max)
_NUMBER_TEXT_RE = re.compile(r"\s*[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,3})?\s*")


class InputError(ValueError):
    """A value given to the collection has the wrong form; the message names it and the expected form."""


def _shown(value):
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return "a %d-bit number" % value.bit_length()
    return text if len(text) <= 80 else text[:77] + "..."


def text(value, option, allow_empty=False):
    """VALUE as a str without NUL bytes."""
    if not isinstance(value, str):
        raise InputError("%s must be a string, got %s %s" % (option, type(value).__name__, _shown(value)))
    if "\x00" in value:
        raise InputError("%s must not contain a NUL byte, got %s" % (option, _shown(value)))
    if not allow_empty and not value.strip():
        raise InputError("%s must not be empty" % option)
    return value


def is_bdf(value):
    """True when VALUE is a PCI address DDDD:BB:SS.F exactly as the kernel writes it (bdf() accepts more)."""
    return isinstance(value, str) and _BDF_RE.fullmatch(value) is not None


def bdf(value, option):
    """VALUE as a lower-case PCI address DDDD:BB:SS.F."""
    text(value, option)
    if not _BDF_RE.fullmatch(value.strip()):
        raise InputError("%s must be a PCI address %s, got %s" % (option, BDF_FORM, _shown(value)))
    return value.strip().lower()


def number(value, option, minimum=None, maximum=None, integer=False):
    """VALUE as a finite int or float within [MINIMUM, MAXIMUM]; bools and strings are refused."""
    kind = "a whole number" if integer else "a number"
    wrong_type = isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int))
    if wrong_type:
        raise InputError("%s must be %s, got %s %s" % (option, kind, type(value).__name__, _shown(value)))
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError("%s must be a finite number, got %s" % (option, value))
    if minimum is not None and value < minimum:
        raise InputError("%s must be at least %s, got %s" % (option, minimum, _shown(value)))
    if maximum is not None and value > maximum:
        raise InputError("%s must be at most %s, got %s" % (option, maximum, _shown(value)))
    return value


def number_text_problem(value, option, integer=False):
    """A sentence when VALUE, as handed in before any conversion, cannot be a number of OPTION; None otherwise.

    Text must use the ASCII digits (at most 30, an exponent of at most 3 digits, none for a whole number); a float
    must be finite. Anything else (None, lists, ...) is left to the type conversion that follows.
    """
    kind = "a whole number" if integer else "a finite number"
    if isinstance(value, float) and not math.isfinite(value):
        return "%s must be %s, got %s" % (option, kind, value)
    if not integer and isinstance(value, int) and not isinstance(value, bool) and abs(value) > _LARGEST_FLOAT:
        return "%s must be a finite number, got a whole number of %d digits that no float holds" % (option, len(str(abs(value))))
    if isinstance(value, str) and not (_INTEGER_TEXT_RE if integer else _NUMBER_TEXT_RE).fullmatch(value):
        return "%s must be %s written with the digits 0-9%s, got %s" % (
            option, kind, "" if integer else " (such as 2.5 or 1e3)", _shown(value))
    return None


def screen_number_options(raw_params, argument_spec):
    """(ARGUMENT_SPEC to build the module with, sentence or None) after checking the raw values of its int and float options.

    RAW_PARAMS are the module's arguments before any conversion (None when unknown). When one of them cannot be a
    number, the returned spec types every number option as raw, so that the module can be built and fail with the
    sentence without handing the value to ansible-core's conversion.
    """
    numbers = [(name, option.get("type") == "int") for name, option in argument_spec.items() if option.get("type") in ("int", "float")]
    for name, integer in numbers:
        problem = number_text_problem((raw_params or {}).get(name), name, integer)
        if problem:
            raw_spec = dict(argument_spec)
            raw_spec.update((other, dict(argument_spec[other], type="raw")) for other, _integer in numbers)
            return raw_spec, problem
    return argument_spec, None


def positive(value, option, maximum=None, integer=False):
    """VALUE as a finite number greater than 0 (and at most MAXIMUM)."""
    number(value, option, maximum=maximum, integer=integer)
    if value <= 0:
        raise InputError("%s must be greater than 0, got %s" % (option, _shown(value)))
    return value


def domain_name(value, option="domain"):
    """VALUE as a libvirt domain name that is also safe as a file name (the QEMU log is DIR/NAME.log)."""
    text(value, option)
    problem = None
    if "/" in value:
        problem = "contains '/'"
    elif value.startswith("."):
        problem = "starts with '.'"
    elif any(ord(char) < 32 or ord(char) == 127 for char in value):
        problem = "contains a control character"
    elif len(value) > _DOMAIN_NAME_MAX:
        problem = "is longer than %d characters" % _DOMAIN_NAME_MAX
    elif value != value.strip():
        problem = "starts or ends with white space"
    if problem:
        raise InputError("%s must be a libvirt domain name (no '/', no leading '.', no control characters), "
                         "but %s %s" % (option, _shown(value), problem))
    return value


def host_name(value, option):
    """VALUE as a host name, an IPv4 address or a bracketed IPv6 address: nothing that adds a URI path or query."""
    text(value, option)
    if _IPV6_RE.fullmatch(value):
        return value
    labels = value.split(".")
    if len(value) > 253 or not all(_HOST_LABEL_RE.fullmatch(label) for label in labels):
        raise InputError("%s must be a host name or address (letters, digits, '-' and '.'; IPv6 in brackets), got %s"
                         % (option, _shown(value)))
    return value


def mapping(value, option):
    """VALUE as a dict."""
    if not isinstance(value, dict):
        raise InputError("%s must be a mapping, got %s %s" % (option, type(value).__name__, _shown(value)))
    return value


def sequence(value, option):
    """VALUE as a list."""
    if not isinstance(value, list):
        raise InputError("%s must be a list, got %s %s" % (option, type(value).__name__, _shown(value)))
    return value
