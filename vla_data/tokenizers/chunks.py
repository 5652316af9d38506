"""Action chunks from converted datasets, for fitting and evaluating action tokenizers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla_data.errors import VlaDataError
from vla_data.normalize import Normalizer, NormMode
from vla_data.permutation import sample_without_replacement
from vla_data.progress import progress
from vla_data.schema import ACTION, column_to_numpy
from vla_data.shards import ShardDataset

# Fitting FAST holds ~85 KB per 50x14 chunk inside the BPE trainer (measured: 20,000 such chunks
# peak at 1.8 GB and take ~25 s), so fitting on every start position of a large dataset runs out
# of memory. 20,000 chunks of 50x14 are 14M coefficient symbols, plenty for a 1-2k vocabulary.
DEFAULT_MAX_CHUNKS = 20_000


@dataclass(frozen=True)
class ChunkSpec:
    """Which chunks: `horizon` steps (or `seconds` x fps), normalized with the manifest stats."""

    horizon: int | None = None
    seconds: float | None = None
    key: str = ACTION
    normalization: NormMode | None = "quantile"
    max_chunks: int | None = DEFAULT_MAX_CHUNKS  # None: every start position
    seed: int = 0
    stride: int = 1

    def __post_init__(self) -> None:
        if (self.horizon is None) == (self.seconds is None):
            raise VlaDataError("give exactly one of horizon (steps) or seconds")
        if self.stride < 1:
            raise VlaDataError(f"stride must be >= 1, got {self.stride}")
        if self.max_chunks is not None and self.max_chunks < 1:
            raise VlaDataError(f"max_chunks must be >= 1, got {self.max_chunks}")

    def steps(self, fps: float) -> int:
        return self.horizon if self.horizon is not None else max(1, round(self.seconds * fps))


@dataclass
class Chunks:
    values: np.ndarray  # [N, H, D] float64, normalized when a normalization was asked for
    owner: np.ndarray  # [N] index into the datasets the chunks came from
    normalizers: list[Normalizer | None]

    def unnormalize(self, values: np.ndarray) -> np.ndarray:
        """`values` `[N, H, D]` (aligned with these chunks) back in original units."""
        out = np.array(values, dtype=np.float64, copy=True)
        for d, normalizer in enumerate(self.normalizers):
            if normalizer is not None:
                mine = self.owner == d
                out[mine] = normalizer.unnormalize(out[mine])
        return out


def chunk_starts(lengths: np.ndarray, horizon: int, stride: int) -> np.ndarray:
    """Chunk start positions per episode: `ceil((length - horizon + 1) / stride)`, 0 if too short."""
    room = np.asarray(lengths, np.int64) - horizon + 1
    return np.where(room > 0, -(-room // stride), 0)


def sample_chunks(roots: list[str | Path], spec: ChunkSpec) -> Chunks:
    """Chunks `[N, H, D]` (float64) that lie inside episodes, from every dataset in `roots`.

    Start positions are every `stride` steps of every episode; with `max_chunks` (the default
    budget), a deterministic sample (by `seed`) of them, kept in dataset order. Work and memory
    are per episode and per chosen chunk: the start positions are never listed one by one.
    """
    datasets = [ShardDataset(root) for root in roots]
    horizons = []
    for ds in datasets:
        if spec.key not in ds.features:
            raise VlaDataError(f"{ds.root}: no feature {spec.key!r} (has {sorted(ds.features)})")
        horizons.append(spec.steps(ds.manifest.fps))
    if len(set(horizons)) != 1:
        raise VlaDataError(
            f"datasets give different horizons {horizons} for {spec.seconds} s; pass --horizon"
        )
    dims = {ds.features[spec.key].shape for ds in datasets}
    if len(dims) != 1:
        raise VlaDataError(f"datasets have different {spec.key} shapes {sorted(dims)}")
    horizon = horizons[0]
    per_episode = [chunk_starts(ds.episode_length, horizon, spec.stride) for ds in datasets]
    episode_owner = np.concatenate([np.full(len(c), d, np.int64) for d, c in enumerate(per_episode)])
    episode_local = np.concatenate([np.arange(len(c), dtype=np.int64) for c in per_episode])
    first = np.concatenate([[0], np.cumsum(np.concatenate(per_episode))])  # [episodes + 1]
    total = int(first[-1])
    if total == 0:
        raise VlaDataError(f"no episode is at least {horizon} steps long")
    budget = total if spec.max_chunks is None else min(spec.max_chunks, total)
    picks = sample_without_replacement(budget, total, (spec.seed, 0x4348))  # [N] sorted flat indices
    episodes = np.searchsorted(first, picks, side="right") - 1  # [N] index into the concatenation
    starts = (picks - first[episodes]) * spec.stride  # [N] step of each chunk in its episode
    normalizers = [
        Normalizer.from_stats(ds.manifest.stats[spec.key], spec.normalization) if spec.normalization else None
        for ds in datasets
    ]
    chunks = np.empty((budget, horizon, int(np.prod(next(iter(dims))))), dtype=np.float64)
    bounds = np.flatnonzero(np.diff(episodes)) + 1
    offsets = np.arange(horizon)
    segments = zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [budget]]), strict=True)
    for lo, hi in progress(segments, "read chunks", total=len(bounds) + 1, unit="episode"):
        d, e = int(episode_owner[episodes[lo]]), int(episode_local[episodes[lo]])
        ds = datasets[d]
        values = column_to_numpy(ds.episode_table(e, [spec.key]).column(0), ds.features[spec.key])
        array = values.reshape(int(ds.episode_length[e]), -1)  # [T, D]
        rows = starts[lo:hi, None] + offsets  # [n, H]
        chunk = array[rows]
        chunks[lo:hi] = normalizers[d].normalize(chunk) if normalizers[d] is not None else chunk
    return Chunks(chunks, episode_owner[episodes], normalizers)
