"""Action chunks from converted datasets, for fitting and evaluating action tokenizers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla_data.errors import VlaDataError
from vla_data.normalize import Normalizer, NormMode
from vla_data.schema import ACTION, column_to_numpy
from vla_data.shards import ShardDataset


@dataclass(frozen=True)
class ChunkSpec:
    """Which chunks: `horizon` steps (or `seconds` x fps), normalized with the manifest stats."""

    horizon: int | None = None
    seconds: float | None = None
    key: str = ACTION
    normalization: NormMode | None = "quantile"
    max_chunks: int | None = None
    seed: int = 0
    stride: int = 1

    def __post_init__(self) -> None:
        if (self.horizon is None) == (self.seconds is None):
            raise VlaDataError("give exactly one of horizon (steps) or seconds")
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


def sample_chunks(roots: list[str | Path], spec: ChunkSpec) -> Chunks:
    """Chunks `[N, H, D]` (float64) that lie inside episodes, from every dataset in `roots`.

    Start positions are every `stride` steps of every episode; with `max_chunks`, a deterministic
    sample (by `seed`) of them, kept in dataset order.
    """
    datasets = [ShardDataset(root) for root in roots]
    starts: list[tuple[int, int, int]] = []  # (dataset, episode, t)
    horizons = []
    for d, ds in enumerate(datasets):
        if spec.key not in ds.features:
            raise VlaDataError(f"{ds.root}: no feature {spec.key!r} (has {sorted(ds.features)})")
        horizon = spec.steps(ds.manifest.fps)
        horizons.append(horizon)
        for e, length in enumerate(ds.episode_length):
            starts += [(d, e, t) for t in range(0, int(length) - horizon + 1, spec.stride)]
    if len(set(horizons)) != 1:
        raise VlaDataError(
            f"datasets give different horizons {horizons} for {spec.seconds} s; pass --horizon"
        )
    dims = {ds.features[spec.key].shape for ds in datasets}
    if len(dims) != 1:
        raise VlaDataError(f"datasets have different {spec.key} shapes {sorted(dims)}")
    if not starts:
        raise VlaDataError(f"no episode is at least {horizons[0]} steps long")
    if spec.max_chunks is not None and spec.max_chunks < len(starts):
        keep = np.sort(np.random.default_rng(spec.seed).choice(len(starts), spec.max_chunks, replace=False))
        starts = [starts[i] for i in keep]
    normalizers = [
        Normalizer.from_stats(ds.manifest.stats[spec.key], spec.normalization) if spec.normalization else None
        for ds in datasets
    ]
    horizon = horizons[0]
    chunks = np.empty((len(starts), horizon, int(np.prod(next(iter(dims))))), dtype=np.float64)
    cache: tuple[int, int, np.ndarray] | None = None
    for i, (d, e, t) in enumerate(starts):
        if cache is None or cache[:2] != (d, e):
            values = datasets[d].episode_table(e).column(spec.key)
            array = column_to_numpy(values, datasets[d].features[spec.key]).reshape(
                int(datasets[d].episode_length[e]), -1
            )
            if normalizers[d] is not None:
                array = normalizers[d].normalize(array)
            cache = (d, e, array)
        chunks[i] = cache[2][t : t + horizon]
    return Chunks(chunks, np.array([d for d, _, _ in starts], dtype=np.int64), normalizers)
