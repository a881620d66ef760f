"""Memory checks made *before* allocating what a user's sizes ask for.

Torch and NumPy report a failed allocation only when the operating system refuses it. On
Linux with overcommit it often does not: a 20 GB array is "allocated", and the kernel's
out-of-memory killer ends the process (no message at all) when its pages are touched. So
every allocation sized by the user (resized images, network activations) is estimated
first and compared with the memory the machine has available; what cannot fit is one
:class:`~ganad.errors.ResourceError` naming the sizes to lower.
"""

from __future__ import annotations

import resource
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


def human(n: float) -> str:
    """Bytes as text: 1.5 GiB, 300 MiB."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def require(nbytes: float, doing: str, hint: str) -> None:
    """Raise ResourceError when ``nbytes`` will not fit in the memory available now."""
    avail = available_bytes()
    if avail is not None and nbytes > HEADROOM * avail:
        raise ResourceError(f"{doing} needs about {human(nbytes)} but {human(avail)} is available; {hint}")
