"""Where a sample's time goes: `bench loader --profile` charges each stage of a sample to its name."""

from __future__ import annotations

import time
from collections import defaultdict


class StageTimer:
    """Accumulates CPU time of this process per stage: `mark(stage)` charges the time since the
    previous mark. CPU time, not wall time: on a shared machine wall time also counts the waits
    for a core, which land on whichever stage was running. All threads' time (the frames of a
    batch may be decoded by a pool of threads, `decode_threads`)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.last = time.process_time()

    def start(self) -> None:
        self.last = time.process_time()

    def mark(self, stage: str) -> None:
        now = time.process_time()
        self.seconds[stage] += now - self.last
        self.last = now


class _NoTimer:
    """What samples use outside a profile: marks cost one method call."""

    def mark(self, stage: str) -> None:
        pass


NO_TIMER = _NoTimer()
