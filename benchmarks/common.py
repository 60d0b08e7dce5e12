"""What the benchmark scripts share: timing a step and the peak memory."""

from __future__ import annotations

import resource
import time


def peak_rss_gib() -> float:
    """The process's peak resident memory, in GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(label: str, func, *args, width: int = 40, **kwargs):
    """Run ``func``, print how long it took; returns (result, seconds)."""
    t0 = time.perf_counter()
    result = func(*args, **kwargs)
    seconds = time.perf_counter() - t0
    print(f"{label:<{width}} {seconds:8.2f} s", flush=True)
    return result, seconds
