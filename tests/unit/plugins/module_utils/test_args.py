# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest
import yaml

from ansible_collections.openeuler.kae.plugins.doc_fragments import _libvirt as libvirt_fragment
from ansible_collections.openeuler.kae.plugins.doc_fragments import _sysfs as sysfs_fragment
from ansible_collections.openeuler.kae.plugins.module_utils import _args
from ansible_collections.openeuler.kae.plugins.module_utils._validate import InputError


def test_merge_keeps_every_option_in_order():
    spec = _args.merge({"a": {"type": "int"}}, _args.libvirt_option(), {"b": {"type": "bool"}})
    assert list(spec) == ["a", "uri", "b"]
    assert spec["uri"] == {"type": "str", "default": "qemu:///system"}


def test_merge_refuses_an_option_declared_twice():
    with pytest.raises(ValueError, match="^option uri is declared twice in one argument_spec$"):
        _args.merge(_args.libvirt_option(), {"uri": {"type": "str"}})


def test_host_options_are_sysfs_root_and_uri():
    assert _args.host_options() == {"sysfs_root": {"type": "path", "default": "/sys"},
                                    "uri": {"type": "str", "default": "qemu:///system"}}


def test_each_call_returns_a_new_spec():
    first = _args.host_options()
    first["uri"]["default"] = "test:///default"
    first["sysfs_root"]["required"] = True
    assert _args.host_options()["uri"]["default"] == "qemu:///system"
    assert "required" not in _args.sysfs_option()["sysfs_root"]


def test_domain_option_required_or_not():
    assert _args.domain_option() == {"domain": {"type": "str", "required": True}}
    assert _args.domain_option(required=False) == {"domain": {"type": "str", "required": False}}
    assert _args.log_path_option() == {"log_path": {"type": "path"}}


@pytest.mark.parametrize("fragment, spec", [
    (libvirt_fragment, _args.libvirt_option()),
    (sysfs_fragment, _args.sysfs_option()),
])
def test_doc_fragment_documents_the_declared_option(fragment, spec):
    """The fragment says what module_utils declares: same names, types and defaults."""
    documented = yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"]
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        assert (documented[name]["type"], documented[name]["default"]) == (option["type"], option["default"])


def test_check_shared_accepts_good_values_and_skips_absent_options():
    params = {"uri": "qemu+ssh://root@hv-b/system", "sysfs_root": "/sys", "domain": "kae-guest", "log_path": None, "x": 1}
    assert _args.check_shared(params) is params
    assert _args.check_shared({"pf": "0000:75:00.0"}) == {"pf": "0000:75:00.0"}


@pytest.mark.parametrize("params, message", [
    ({"uri": ""}, "uri (a libvirt connection URI such as qemu:///system) must not be empty"),
    ({"uri": "qemu:///system", "sysfs_root": "/sys\x00"},
     "sysfs_root (the root of a sysfs tree such as /sys) must not contain a NUL byte"),
    ({"sysfs_root": 5}, "sysfs_root (the root of a sysfs tree such as /sys) must be a string, got int 5"),
    ({"domain": "../etc/passwd"}, "domain must"),
    ({"domain": None, "log_path": " "}, "log_path (the path of a QEMU log file) must not be empty"),
])
def test_check_shared_names_the_bad_option(params, message):
    with pytest.raises(InputError) as info:
        _args.check_shared(params)
    assert str(info.value).startswith(message)
