"""Memory checks made *before* allocating what a user's sizes ask for.

Torch and NumPy report a failed allocation only when the operating system refuses it. On
Linux with overcommit it often does not: a 20 GB array is "allocated", and the kernel's
out-of-memory killer ends the process (no message at all) when its pages are touched. So
every allocation sized by the user (resized images, network activations) is estimated
first and compared with the memory the machine has available; what cannot fit is one
:class:`~ganad.errors.ResourceError` naming the sizes to lower.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ganad.errors import ResourceError

#: share of the available memory one allocation may take: the rest is for the interpreter,
#: torch's workspace and the copies an operation makes on the way
HEADROOM = 0.8


def available_bytes() -> int | None:
    """Memory this process may still use: the smaller of MemAvailable and an address-space cap; None if unknown."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[0])  # virtual size in pages
            limits.append(max(soft - pages * resource.getpagesize(), 0))
        except (OSError, ValueError, IndexError):
            limits.append(soft)
    return min(limits) if limits else None


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's or a batch job's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


#: how long a measured busy-core count is reused: the API calls free_cores on every fit and scoring call
BUSY_CACHE_SECONDS = 2.0
_busy_cache: tuple[float, float] | None = None  # (time measured, busy cores)


def busy_cores(interval: float = 0.1) -> float | None:
    """How many of this process's usable cores other work keeps busy right now, or None if unknown.

    Sampled from ``/proc/stat`` over ``interval`` seconds on the CPUs in this process's affinity
    (this process sleeps meanwhile, so what is busy is someone else). The 1-minute load average
    lags: right after a heavy command ends it still reads a core busy, so a run started then
    (the next command of a script, a benchmark's next repeat) took half the threads of an idle
    machine (docs/results/threads_idle.json). Reused for :data:`BUSY_CACHE_SECONDS`.
    """
    global _busy_cache
    now = time.monotonic()
    if _busy_cache is not None and now - _busy_cache[0] < BUSY_CACHE_SECONDS:
        return _busy_cache[1]
    try:
        cpus = {f"cpu{i}" for i in os.sched_getaffinity(0)}
    except (AttributeError, OSError):
        cpus = None

    def snapshot() -> tuple[int, int]:
        total = idle = 0
        with open("/proc/stat") as f:
            for line in f:
                name, *vals = line.split()
                if not name.startswith("cpu") or name == "cpu" or (cpus is not None and name not in cpus):
                    continue
                v = [int(x) for x in vals[:8]]  # user nice system idle iowait irq softirq steal
                total += sum(v)
                idle += v[3] + v[4]
        return total, idle

    try:
        t0, i0 = snapshot()
        time.sleep(interval)
        t1, i1 = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    if t1 <= t0:
        return None
    busy = (1 - (i1 - i0) / (t1 - t0)) * usable_cores()
    _busy_cache = (time.monotonic(), busy)
    return busy


def free_cores() -> int:
    """Torch threads that will not wait on busy cores: usable cores minus the busy ones, at least 1.

    On a shared machine a thread on a busy core waits for it, and torch's threads wait for their
    slowest: on 2 cores with other work on them, 2 threads trained the quick start 2.85x slower
    than 1 (docs/results/threads_loaded.json). On an idle machine this is every core. Busy cores
    are measured now (:func:`busy_cores`); where that is not possible, the 1-minute load average.
    """
    cores = usable_cores()
    busy = busy_cores()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on this platform: assume idle
            busy = 0.0
    return max(1, min(cores, cores - round(busy)))


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch uses ``n`` CPU threads inside (None: unchanged); the caller's setting comes back after."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def human(n: float) -> str:
    """Bytes as text: 1.5 GiB, 300 MiB."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def require(nbytes: float, doing: str, hint: str) -> None:
    """Raise ResourceError when ``nbytes`` will not fit in the memory available now."""
    avail = available_bytes()
    if avail is not None and nbytes > HEADROOM * avail:
        raise ResourceError(f"{doing} needs about {human(nbytes)} but {human(avail)} is available; {hint}")
