# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run a module's main() in-process: its arguments come from patch_module_args, and exit_json/fail_json raise."""

from __future__ import annotations

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class AnsibleExitJson(Exception):
    """The module called exit_json; ``result`` holds what it returned."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


class AnsibleFailJson(Exception):
    """The module called fail_json; ``result`` holds what it returned (``msg`` and ``failed``)."""

    def __init__(self, result):
        super().__init__(result.get("msg", result))
        self.result = result


def exit_json(module, **result):
    """Stand-in for AnsibleModule.exit_json."""
    result.setdefault("changed", False)
    raise AnsibleExitJson(result)


def fail_json(module, msg, **result):
    """Stand-in for AnsibleModule.fail_json."""
    result.update(failed=True, msg=msg)
    raise AnsibleFailJson(result)


def patch_exits(monkeypatch):
    """Make AnsibleModule.exit_json/fail_json raise AnsibleExitJson/AnsibleFailJson."""
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


def module_args(args, check_mode=False, diff=False):
    """The module's parameters plus the internal keys Ansible adds for --check and --diff."""
    params = dict(args or {})
    params.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
    return params


def run_module(module, args=None, check_mode=False, diff=False):
    """Run ``module.main()`` with ``args``; return the exit_json result, or raise AnsibleFailJson.

    Expects exit_json/fail_json to be patched (see patch_exits). A main() that returns without either is a bug.
    """
    with patch_module_args(module_args(args, check_mode, diff)):
        try:
            module.main()
        except AnsibleExitJson as exc:
            return exc.result
    raise AssertionError("%s.main() returned without calling exit_json or fail_json" % module.__name__)


def fail_module(module, args=None, check_mode=False, diff=False):
    """Run ``module.main()`` expecting fail_json; return its result (with ``msg``)."""
    try:
        result = run_module(module, args, check_mode, diff)
    except AnsibleFailJson as exc:
        return exc.result
    raise AssertionError("%s.main() succeeded where it should have failed: %r" % (module.__name__, result))
