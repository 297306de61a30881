# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The run_module/fail_module fixtures against a throwaway module and against qemu_trace_events."""

from __future__ import annotations

import types

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openeuler.kae.plugins.modules import qemu_trace_events
from ansible_collections.openeuler.kae.tests.unit.plugins.modules.utils import AnsibleFailJson


def _write_file_main():
    """A minimal module: write O(content) to O(path), honouring check mode and diff."""
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path", required=True), content=dict(type="str", default="")),
        supports_check_mode=True,
    )
    path, content = module.params["path"], module.params["content"]
    try:
        with open(path) as handle:
            before = handle.read()
    except FileNotFoundError:
        before = None
    if before is not None and before.startswith("locked"):
        module.fail_json(msg="%s is locked" % path)
    changed = before != content
    if changed and not module.check_mode:
        with open(path, "w") as handle:
            handle.write(content)
    result = dict(changed=changed)
    if module._diff:
        result["diff"] = dict(before=before or "", after=content)
    module.exit_json(**result)


WRITE_FILE = types.ModuleType("write_file")
WRITE_FILE.main = _write_file_main

SILENT = types.ModuleType("silent")
SILENT.main = lambda: None


def test_args_reach_the_module_and_the_result_comes_back(run_module, tmp_path):
    target = tmp_path / "f"
    assert run_module(WRITE_FILE, {"path": str(target), "content": "a"}) == {"changed": True}
    assert target.read_text() == "a"
    assert run_module(WRITE_FILE, {"path": str(target), "content": "a"}) == {"changed": False}


def test_check_mode_and_diff_reach_the_module(run_module, tmp_path):
    target = tmp_path / "f"
    target.write_text("old")
    result = run_module(WRITE_FILE, {"path": str(target), "content": "new"}, check_mode=True, diff=True)
    assert result == {"changed": True, "diff": {"before": "old", "after": "new"}}
    assert target.read_text() == "old"
    assert "diff" not in run_module(WRITE_FILE, {"path": str(target), "content": "new"}, check_mode=True)


def test_fail_json_is_returned_by_fail_module_and_raised_by_run_module(run_module, fail_module, tmp_path):
    target = tmp_path / "f"
    target.write_text("locked")
    assert fail_module(WRITE_FILE, {"path": str(target)}) == {"failed": True, "msg": "%s is locked" % target}
    with pytest.raises(AnsibleFailJson, match="is locked"):
        run_module(WRITE_FILE, {"path": str(target)})


def test_argument_spec_errors_fail(fail_module):
    assert "missing required arguments: path" in fail_module(WRITE_FILE, {})["msg"]
    assert "unsupported parameter" in fail_module(WRITE_FILE, {"path": "/x", "bogus": 1})["msg"].lower()


def test_a_module_that_never_exits_is_reported(run_module):
    with pytest.raises(AssertionError, match="without calling exit_json"):
        run_module(SILENT, {})


def test_success_where_failure_was_expected_is_reported(fail_module, tmp_path):
    with pytest.raises(AssertionError, match="should have failed"):
        fail_module(WRITE_FILE, {"path": str(tmp_path / "f")})


def test_real_module_qemu_trace_events(run_module, fail_module, tmp_path):
    log = tmp_path / "guest.log"
    log.write_text("2026-11-25 18:04:53.027+0000: initiating migration\n"
                   "219@1795629893.041251:vm_state_notify running 0 reason 7 (finish-migrate)\n")
    result = run_module(qemu_trace_events, {"log_path": str(log)}, check_mode=True)
    assert result["changed"] is False
    assert [event["name"] for event in result["events"]] == ["vm_state_notify"]
    assert result["next_offset"] == log.stat().st_size
    assert "mutually exclusive" in fail_module(qemu_trace_events, {"log_path": str(log), "domain": "g"})["msg"]
