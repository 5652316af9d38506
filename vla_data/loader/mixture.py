"""Which sample goes in which batch: a pure function of (seed, epoch, batch), computed per batch.

An epoch has `batches x batch_size` slots. Each source's share of them follows its weight exactly
(largest-remainder apportionment of every prefix of `period` batches). Within a period, slots are
laid out evenly (`stratified`: every batch holds the exact proportion, rounding carried over
batches) or shuffled (`random`). The m-th slot of source s in the epoch takes entry m of that
source's order: a fresh seeded permutation per pass over the source (`shuffle="random"`), or a
shard-block order (`shuffle="shard_block"`): the source's shards in a seeded order, taken `window`
shards at a time, the samples inside a window shuffled, so a reader touches about `window` shards
at any time and each shard about once per pass.

Nothing is materialised per sample: one batch costs O(period x batch_size) memory (one batch when
stratified), plus O(shards) for the shard-block order. Global batch g goes to rank g % W, so ranks
are disjoint and together cover the epoch. The plan runs in the main process, so the stream does
not depend on the number of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from vla_data.errors import VlaDataError
from vla_data.permutation import permute

RANDOM_PERIOD = 64  # batches whose slots are shuffled together in random mode


def apportion(slots: int, p: np.ndarray) -> np.ndarray:
    """Largest-remainder split of `slots` by proportions `p` (ties to the lower source index)."""
    quota = slots * p
    counts = np.floor(quota).astype(np.int64)
    short = slots - int(counts.sum())
    counts[np.argsort(-(quota - counts), kind="stable")[:short]] += 1
    return counts


def even_layout(counts: np.ndarray) -> np.ndarray:
    """Source of each slot when `counts[s]` slots of each source are spread evenly over the row.

    [3, 1] -> [0, 0, 1, 0]: slot i of source s sits at (i + 0.5) / counts[s] of the row (ties: lower s).
    """
    sources = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    within = np.concatenate([np.arange(c) for c in counts]) if len(counts) else sources
    position = (within + 0.5) / np.maximum(counts, 1)[sources]
    return sources[np.lexsort((sources, position))]


@dataclass(frozen=True)
class MixturePlan:
    sizes: tuple[int, ...]
    weights: tuple[float, ...]
    batch_size: int
    samples_per_epoch: int
    mode: Literal["random", "stratified"] = "random"
    seed: int = 0
    world_size: int = 1
    shuffle: Literal["random", "shard_block"] = "random"
    window: int = 4  # shards per window for shuffle="shard_block"
    blocks: tuple[tuple[int, ...], ...] | None = None  # per source: shard start samples + its size
    _periods: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)
    _orders: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.sizes) != len(self.weights) or not self.sizes:
            raise VlaDataError("a mixture needs one weight per source")
        if any(s <= 0 for s in self.sizes):
            raise VlaDataError(f"every source needs samples; sizes are {self.sizes}")
        if self.batches_per_rank < 1:
            raise VlaDataError(
                f"{self.samples_per_epoch} samples per epoch give no batch of {self.batch_size} for each of {self.world_size} ranks"
            )
        if self.shuffle not in ("random", "shard_block"):
            raise VlaDataError(f"shuffle must be 'random' or 'shard_block', got {self.shuffle!r}")
        if self.window < 1:
            raise VlaDataError(f"the shard-block window must be >= 1 shard, got {self.window}")
        if self.shuffle == "shard_block":
            if self.blocks is None or len(self.blocks) != len(self.sizes):
                raise VlaDataError("shuffle='shard_block' needs the shard boundaries of every source")
            for size, bounds in zip(self.sizes, self.blocks, strict=True):
                if bounds[0] != 0 or bounds[-1] != size or any(np.diff(bounds) <= 0):
                    raise VlaDataError(f"shard boundaries {bounds[:5]}... do not split 0..{size}")

    @property
    def probabilities(self) -> np.ndarray:
        w = np.asarray(self.weights, np.float64)
        return w / w.sum()

    @property
    def batches_per_rank(self) -> int:
        return self.samples_per_epoch // self.batch_size // self.world_size

    @property
    def period(self) -> int:
        """Batches per apportionment period: long enough that every source gets >= 1 slot, which
        keeps the per-period counts non-negative (largest remainder is not house-monotone)."""
        rarest = math.ceil(1 / (float(self.probabilities.min()) * self.batch_size) - 1e-9)
        return max(rarest, 1 if self.mode == "stratified" else RANDOM_PERIOD)

    def batch(self, epoch: int, index: int, rank: int = 0) -> list[tuple[int, int]]:
        """(source, sample) pairs of this rank's batch `index` in `epoch`."""
        g = index * self.world_size + rank
        sources, ranks = self._batch_slots(epoch, g)
        samples = np.empty(len(sources), np.int64)
        for s in np.unique(sources):
            mine = sources == s
            samples[mine] = self.source_order(epoch, int(s), ranks[mine])
        return list(zip(sources.tolist(), samples.tolist(), strict=True))

    def _batch_slots(self, epoch: int, g: int) -> tuple[np.ndarray, np.ndarray]:
        """Source of each slot of global batch `g` and its rank m among that source's epoch slots."""
        total = self.batches_per_rank * self.world_size
        periods = max(1, total // self.period)
        c = min(g // self.period, periods - 1)  # the last period absorbs the remainder
        key = (epoch, c)
        if key not in self._periods:
            start, end = c * self.period, (c + 1) * self.period if c < periods - 1 else total
            p, b = self.probabilities, self.batch_size
            before = apportion(start * b, p)
            counts = apportion(end * b, p) - before
            layout = even_layout(counts)
            if self.mode == "random":
                layout = layout[np.random.default_rng([self.seed, epoch, 0, c]).permutation(len(layout))]
            order = np.argsort(layout, kind="stable")
            ranks = np.empty(len(layout), np.int64)
            ranks[order] = np.arange(len(layout)) - np.repeat(np.cumsum(counts) - counts, counts)
            _remember(self._periods, key, (start, layout, ranks + before[layout]), 2)
        start, layout, ranks = self._periods[key]
        part = slice((g - start) * self.batch_size, (g - start + 1) * self.batch_size)
        return layout[part], ranks[part]

    def source_order(self, epoch: int, s: int, m: np.ndarray) -> np.ndarray:
        """Samples of source `s` at its epoch slots `m`: pass m // size, entry m % size of its order."""
        size = self.sizes[s]
        out = np.empty(len(m), np.int64)
        passes = m // size
        for pass_ in np.unique(passes):
            mine = passes == pass_
            key = (self.seed, epoch, 1 + s, int(pass_))
            if self.shuffle == "random":
                out[mine] = self._random_order(key, size, m[mine] % size)
            else:
                out[mine] = self._block_order(key, s, m[mine] % size)
        return out

    def _random_order(self, key: tuple[int, ...], size: int, i: np.ndarray) -> np.ndarray:
        """Entries `i` of `permute(range(size), size, key)`, computed ORDER_BLOCK consecutive
        entries at a time and kept (a few blocks): a batch's entries are nearly consecutive, so one
        vectorised `permute` serves many batches instead of each paying its rounds."""
        block = i // ORDER_BLOCK
        out = np.empty(len(i), np.int64)
        for b in np.unique(block).tolist():
            mine = block == b
            start = b * ORDER_BLOCK
            cache_key = (*key, "block", b)
            if cache_key not in self._orders:
                entries = permute(np.arange(start, min(size, start + ORDER_BLOCK)), size, key)
                _remember(self._orders, cache_key, entries, 4 * len(self.sizes))
            out[mine] = self._orders[cache_key][i[mine] - start]
        return out

    def _block_order(self, key: tuple[int, ...], s: int, i: np.ndarray) -> np.ndarray:
        """Entries `i` of a shard-block order of source `s`: shards permuted, windows of `window`
        consecutive shards, samples permuted inside each window."""
        if key not in self._orders:
            bounds = np.asarray(self.blocks[s], np.int64)  # [shards + 1]
            n = len(bounds) - 1
            shards = permute(np.arange(n), n, (*key, 0))
            cum = np.concatenate([[0], np.cumsum(np.diff(bounds)[shards])])  # shard starts, permuted
            edges = cum[np.r_[np.arange(0, n, self.window), n]]  # window starts + the end
            _remember(self._orders, key, (bounds, shards, cum, edges), 2 * len(self.sizes))
        bounds, shards, cum, edges = self._orders[key]
        w = np.searchsorted(edges, i, side="right") - 1
        position = np.empty(len(i), np.int64)
        for window in np.unique(w):
            mine = w == window
            lo, hi = int(edges[window]), int(edges[window + 1])
            position[mine] = lo + permute(i[mine] - lo, hi - lo, (*key, 1 + int(window)))
        j = np.searchsorted(cum, position, side="right") - 1
        return bounds[shards[j]] + position - cum[j]


ORDER_BLOCK = 4096  # entries of a source's sample order computed together (32 KB)


def _remember(cache: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    """Insert into a small FIFO cache (the plan walks forward, so the oldest entry goes first)."""
    while len(cache) >= limit:
        cache.pop(next(iter(cache)))
    cache[key] = value


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
