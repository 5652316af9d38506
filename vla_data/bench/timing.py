"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time


def median_seconds(func, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
