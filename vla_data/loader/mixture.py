"""Which sample goes in which batch: a pure function of (seed, epoch, batch).

Every epoch has a plan: for each of its `batches x batch_size` slots, a source (by weight: drawn
at random, or `stratified` so every batch holds the exact proportion with rounding carried over
batches) and an index inside that source (a fresh permutation of the source per pass, so a
source is seen without repeats until it is exhausted). Global batch g goes to rank g % W, so
ranks are disjoint and together cover the epoch. The plan is computed in the main process, so
the stream does not depend on the number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from vla_data.errors import VlaDataError


@dataclass(frozen=True)
class MixturePlan:
    sizes: tuple[int, ...]
    weights: tuple[float, ...]
    batch_size: int
    samples_per_epoch: int
    mode: Literal["random", "stratified"] = "random"
    seed: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if len(self.sizes) != len(self.weights) or not self.sizes:
            raise VlaDataError("a mixture needs one weight per source")
        if any(s <= 0 for s in self.sizes):
            raise VlaDataError(f"every source needs samples; sizes are {self.sizes}")
        if self.batches_per_rank < 1:
            raise VlaDataError(
                f"{self.samples_per_epoch} samples per epoch give no batch of {self.batch_size} for each of {self.world_size} ranks"
            )

    @property
    def probabilities(self) -> np.ndarray:
        w = np.asarray(self.weights, np.float64)
        return w / w.sum()

    @property
    def batches_per_rank(self) -> int:
        return self.samples_per_epoch // self.batch_size // self.world_size

    def batch(self, epoch: int, index: int, rank: int = 0) -> list[tuple[int, int]]:
        """(source, sample) pairs of this rank's batch `index` in `epoch`."""
        sources, samples = _epoch_plan(self, epoch)
        g = index * self.world_size + rank
        part = slice(g * self.batch_size, (g + 1) * self.batch_size)
        return list(zip(sources[part].tolist(), samples[part].tolist(), strict=True))

    def slot_sources(self, epoch: int) -> np.ndarray:
        slots = self.batches_per_rank * self.world_size * self.batch_size
        p = self.probabilities
        if self.mode == "random":
            return (
                np.random.default_rng([self.seed, epoch, 0]).choice(len(p), size=slots, p=p).astype(np.int32)
            )
        carry = np.zeros(len(p))
        out = []
        for _ in range(slots // self.batch_size):
            target = p * self.batch_size + carry
            counts = np.floor(target).astype(np.int64)
            short = self.batch_size - counts.sum()
            counts[np.argsort(-(target - counts), kind="stable")[:short]] += 1
            carry = target - counts
            out.append(np.repeat(np.arange(len(p), dtype=np.int32), counts))
        return np.concatenate(out)


@lru_cache(maxsize=2)
def _epoch_plan(plan: MixturePlan, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    sources = plan.slot_sources(epoch)
    samples = np.empty(len(sources), np.int64)
    for s, size in enumerate(plan.sizes):
        slots = np.flatnonzero(sources == s)
        passes = -(-len(slots) // size)
        order = [np.random.default_rng([plan.seed, epoch, 1 + s, p]).permutation(size) for p in range(passes)]
        samples[slots] = np.concatenate(order)[: len(slots)] if order else []
    return sources, samples


class LoaderState:
    """Where the stream is: the epoch and how many of this rank's batches were consumed."""

    def __init__(self, epoch: int = 0, batch: int = 0):
        self.epoch, self.batch = epoch, batch


class MixtureBatchSampler:
    """Yields each batch's (source, sample) keys from the current state onwards (main process)."""

    def __init__(self, plan: MixturePlan, rank: int, state: LoaderState):
        self.plan, self.rank, self.state = plan, rank, state

    def __iter__(self):
        epoch = self.state.epoch
        for index in range(self.state.batch, self.plan.batches_per_rank):
            yield self.plan.batch(epoch, index, self.rank)

    def __len__(self) -> int:
        return self.plan.batches_per_rank - self.state.batch
