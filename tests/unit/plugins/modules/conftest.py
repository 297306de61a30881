# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fixtures to run modules in-process.

    def test_reads(run_module):
        result = run_module(qemu_trace_events, {"log_path": str(log)}, check_mode=True)
        assert result["changed"] is False

    def test_bad_offset(fail_module):
        assert "offset" in fail_module(qemu_trace_events, {"log_path": str(log), "offset": -1})["msg"]

``run_module`` returns what the module passed to exit_json and raises ``AnsibleFailJson`` when it called
fail_json; ``fail_module`` returns what it passed to fail_json. Both take ``check_mode`` and ``diff``.
"""

from __future__ import annotations

import pytest

from ansible_collections.openeuler.kae.tests.unit.plugins.modules.utils import (
    fail_module as _fail_module,
    patch_exits,
    run_module as _run_module,
)


@pytest.fixture
def module_exits(monkeypatch):
    """Patch AnsibleModule.exit_json/fail_json to raise AnsibleExitJson/AnsibleFailJson for this test."""
    patch_exits(monkeypatch)


@pytest.fixture
def run_module(module_exits):
    """Callable (module, args, check_mode=False, diff=False) -> exit_json result."""
    return _run_module


@pytest.fixture
def fail_module(module_exits):
    """Callable (module, args, check_mode=False, diff=False) -> fail_json result."""
    return _fail_module
