# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import multiprocessing
import time

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils._hostlock import LockTimeout, host_lock


def _hold(lock_dir, ready, seconds):
    with host_lock("holding for the test", 5, lock_dir=lock_dir):
        ready.set()
        time.sleep(seconds)
        # Written while still holding the lock: whoever gets the lock next must see it.
        with open(lock_dir + "/released", "w", encoding="ascii") as handle:
            handle.write("done")


def _other_process(lock_dir, seconds):
    ready = multiprocessing.Event()
    proc = multiprocessing.Process(target=_hold, args=(str(lock_dir), ready, seconds))
    proc.start()
    assert ready.wait(5)
    return proc


def test_second_holder_times_out_naming_the_first(tmp_path):
    proc = _other_process(tmp_path, 2)
    try:
        with pytest.raises(LockTimeout) as info:
            with host_lock("second", 0.3, lock_dir=str(tmp_path)):
                pytest.fail("the lock was taken twice")
        assert "holding for the test" in str(info.value) and "openeuler-kae.lock" in str(info.value)
    finally:
        proc.join()


def test_second_holder_waits_for_release(tmp_path):
    proc = _other_process(tmp_path, 0.3)
    try:
        with host_lock("second", 5, lock_dir=str(tmp_path)) as path:
            assert (tmp_path / "released").exists()
            with open(path, encoding="ascii") as handle:
                assert "second" in handle.read()
    finally:
        proc.join()
    assert proc.exitcode == 0


def test_lock_released_when_holder_dies(tmp_path):
    proc = _other_process(tmp_path, 30)
    proc.kill()
    proc.join()
    with host_lock("after a kill", 1, lock_dir=str(tmp_path)):
        pass
