"""Timing and summary statistics."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = ["Summary", "percentile", "summarize", "timed"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Summary:
    """Per-operation latency in milliseconds (or, for throughput, operations per second)."""

    n: int
    median: float
    p95: float
    mean: float
    minimum: float

    def as_dict(self) -> dict[str, float]:
        return {"n": self.n, "median": self.median, "p95": self.p95, "mean": self.mean,
                "min": self.minimum}


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    return Summary(len(values), statistics.median(values), percentile(values, 95),
                   statistics.fmean(values), min(values))


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    """Await ``call()`` once; its wall time in milliseconds."""
    start = time.perf_counter_ns()
    await call()
    return (time.perf_counter_ns() - start) / 1e6
