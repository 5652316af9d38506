"""Where a sample's time goes: `bench loader --profile` charges each stage of a sample to its name."""

from __future__ import annotations

import time
from collections import defaultdict


class StageTimer:
    """Accumulates wall time per stage: `mark(stage)` charges the time since the previous mark."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.last = time.perf_counter()

    def start(self) -> None:
        self.last = time.perf_counter()

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] += now - self.last
        self.last = now


class _NoTimer:
    """What samples use outside a profile: marks cost one method call."""

    def mark(self, stage: str) -> None:
        pass


NO_TIMER = _NoTimer()
