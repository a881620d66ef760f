"""Helpers shared by the benchmark scripts, so each number is taken the same way.

* :func:`real_inputs`: the real, preprocessed inputs every speed benchmark uses
  (MNIST at 32x32x1 for the conv nets, KDD Cup 99 rows with 121 features for
  the MLPs). Speed barely depends on content, but real inputs keep the data
  path (IDX / KDD readers, preprocessing) the one users get.
* :func:`machine`: what a number was measured on (CPU model, threads, torch,
  load average), because on a shared 2-core machine a number without its load
  is not comparable to anything.
* :func:`best_seconds` / :func:`median_seconds`: repeat timing in one place.

Scripts import it as ``from _common import ...``: Python puts the script's own
folder (``benchmarks/``) first on ``sys.path``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

#: name -> (load_source name, protocol, class, preprocessing kind, image size)
INPUTS: dict[str, tuple[str, str, int | None, str, int | None]] = {
    "mnist-32x32": ("mnist", "one-class-normal", 0, "image", 32),
    "kdd99-121": ("kdd99", "kdd", None, "tabular", None),
}


def real_inputs(
    data_dir: str | None, n: int, *, split: str = "test", which: tuple[str, ...] = tuple(INPUTS)
) -> dict[str, tuple[Any, np.ndarray]]:
    """``{name: (InputSpec, first n preprocessed samples of the split)}`` for each of ``which``.

    The preprocessor is fitted on training samples, as ``ganad train`` does;
    ``split="train"`` gives normal-only rows (what a detector trains on).
    Files must be present (``download=False``): benchmarks never hit the network.
    """
    from ganad.data import load_source, make_split
    from ganad.data.transforms import Preprocessor

    out: dict[str, tuple[Any, np.ndarray]] = {}
    for name in which:
        source, protocol, cls, kind, size = INPUTS[name]
        sp = make_split(load_source(source, data_dir=data_dir, download=False), protocol, cls, seed=0)
        pre = Preprocessor.fit(sp.train.x[:5000], kind, image_size=size)
        part = getattr(sp, split)
        out[name] = (pre.spec, pre.transform(part.x[:n]))
    return out


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (``platform.processor()`` is just 'x86_64' on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads: int | None = None) -> dict[str, Any]:
    """Where and under what load a benchmark ran; ``load_avg_1m`` near or above the core count means disturbed."""
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_1m_5m_15m": load,
    }


def best_seconds(fn: Callable[[], Any], repeats: int = 1) -> float:
    """Fastest of ``repeats`` calls: the least disturbed estimate of a fixed amount of work."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def median_seconds(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, list[float]]:
    """Median of ``repeats`` calls and every sample (reported, so the spread is visible)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


class CpuMeter:
    """How many cores *other* processes kept busy while a block ran (from /proc/stat).

    ``others_cores`` = (machine-wide busy CPU time - this process's CPU time) /
    wall time. On a 2-core machine, 0 means the measurement had the machine to
    itself and 1 means another process held a whole core throughout: that is
    the number to read beside any speed taken while benchmark grids run.
    """

    def __init__(self) -> None:
        self.others_cores: float | None = None

    @staticmethod
    def _machine_busy_seconds() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is already in user

    def __enter__(self) -> CpuMeter:
        t = os.times()
        self._t0, self._self0, self._busy0 = time.perf_counter(), t.user + t.system, self._machine_busy_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        t = os.times()
        wall = time.perf_counter() - self._t0
        busy1 = self._machine_busy_seconds()
        if self._busy0 is None or busy1 is None or wall <= 0:
            return
        others = (busy1 - self._busy0) - (t.user + t.system - self._self0)
        self.others_cores = round(max(others, 0.0) / wall, 2)
