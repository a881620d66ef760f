"""ganad.resources: the thread default reads the cores other work keeps busy now (issue 19)."""

from __future__ import annotations

import subprocess
import sys
import time

from ganad import resources
from ganad.resources import busy_cores, free_cores, usable_cores


def test_busy_cores_sees_a_process_that_starts_spinning_now_and_free_cores_follows():
    resources._busy_cache = None
    before = busy_cores()
    assert before is not None and 0 <= before <= usable_cores() + 0.05
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        resources._busy_cache = None
        during = busy_cores(interval=0.5)
        assert during >= min(before + 0.5, usable_cores() - 0.2), (before, during)
        assert 1 <= free_cores() <= max(1, usable_cores() - 1)  # the spinning core is not offered
    finally:
        spin.kill()
        spin.wait()


def test_a_measurement_is_reused_for_a_moment_so_scoring_calls_stay_cheap():
    resources._busy_cache = None
    first = busy_cores()
    t0 = time.perf_counter()
    assert busy_cores() == first and time.perf_counter() - t0 < 0.05
