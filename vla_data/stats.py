"""Running per-dimension statistics: count, mean, std, min, max and quantiles.

Quantiles come from a fixed-size histogram per dimension whose range grows by powers of two, so
growing only merges whole bins and never moves a count to the wrong place. The error of any
quantile (numpy's default linear definition) is less than one bin width, which `quantile_error_bound()` reports per dimension; the width
is at most `2 * (max - min) / bins` (plus the tiny initial width for a constant dimension). With the
default 8192 bins that is 0.025% of the value range, independent of the order of the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
DEFAULT_BINS = 8192


@dataclass
class RunningStats:
    """Accumulates `[N, D]` batches; `result()` gives JSON-ready lists per statistic."""

    bins: int = DEFAULT_BINS

    def __post_init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self.min: np.ndarray | None = None
        self.max: np.ndarray | None = None
        self.lo: np.ndarray | None = None  # left edge of bin 0, per dimension
        self.width: np.ndarray | None = None  # bin width, per dimension
        self.hist: np.ndarray | None = None  # [D, bins] int64

    def update(self, values: np.ndarray) -> None:
        """Add a batch `[N, D]` (or `[N]`, treated as D = 1)."""
        x = np.asarray(values, dtype=np.float64)
        x = x.reshape(len(x), -1)
        if len(x) == 0:
            return
        batch_min, batch_max = x.min(axis=0), x.max(axis=0)
        if self.hist is None:
            dims = x.shape[1]
            self.mean = np.zeros(dims)
            self.m2 = np.zeros(dims)
            self.min, self.max = batch_min, batch_max
            span = batch_max - batch_min
            self.width = np.where(span > 0, span / self.bins, np.maximum(np.abs(batch_min), 1.0) * 1e-9)
            self.lo = batch_min.copy()
            self.hist = np.zeros((dims, self.bins), dtype=np.int64)
        else:
            self.min = np.minimum(self.min, batch_min)
            self.max = np.maximum(self.max, batch_max)
            self._grow_to(self.min, self.max)
        self._merge_moments(x)
        index = np.floor((x - self.lo) / self.width).astype(np.int64)
        index = np.clip(index, 0, self.bins - 1) + np.arange(x.shape[1]) * self.bins
        self.hist += np.bincount(index.ravel(), minlength=self.hist.size).reshape(self.hist.shape)

    def _merge_moments(self, x: np.ndarray) -> None:
        # Chan et al. pairwise update: stable for long streams of similar values.
        n = len(x)
        batch_mean = x.mean(axis=0)
        batch_m2 = ((x - batch_mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + batch_m2 + delta**2 * self.count * n / total
        self.count = total

    def _grow_to(self, low: np.ndarray, high: np.ndarray) -> None:
        for d in np.flatnonzero((low < self.lo) | (high >= self.lo + self.width * self.bins)):
            # New bins are `factor` old bins wide (factor 1: the grid only slides) and start on an old
            # edge, `shift` old bins to the left, so old counts merge exactly. [low, high] is centred
            # to leave room on both sides.
            factor = 1
            while True:
                new_width = self.width[d] * factor
                slack = (self.bins * new_width - (high[d] - low[d])) / 2
                shift = int(np.ceil((self.lo[d] - (low[d] - slack)) / self.width[d]))
                new_lo = self.lo[d] - shift * self.width[d]
                if slack > 0 and new_lo <= low[d] and new_lo + new_width * self.bins > high[d]:
                    break
                factor *= 2
            new_index = np.clip((np.arange(self.bins) + shift) // factor, 0, self.bins - 1)
            self.hist[d] = np.bincount(new_index, weights=self.hist[d], minlength=self.bins).astype(np.int64)
            self.lo[d], self.width[d] = new_lo, new_width

    def quantile(self, q: float) -> np.ndarray:
        """Quantile `q` per dimension with numpy's default (linear) definition, to within one bin.

        The k-th order statistic is placed inside the bin that must contain it, so each estimate is
        off by less than one bin width; numpy interpolates between ranks floor(q(n-1)) and the next,
        and so do we.
        """
        cumulative = np.cumsum(self.hist, axis=1)
        position = q * (self.count - 1)
        low_rank = int(np.floor(position))
        high_rank = min(low_rank + 1, self.count - 1)
        frac = position - low_rank
        out = np.empty(len(self.hist))
        for d in range(len(self.hist)):
            values = []
            for rank in (low_rank, high_rank):
                b = min(int(np.searchsorted(cumulative[d], rank, side="right")), self.bins - 1)
                before = cumulative[d, b - 1] if b > 0 else 0
                inside = max(int(self.hist[d, b]), 1)
                values.append(self.lo[d] + (b + (rank - before + 0.5) / inside) * self.width[d])
            out[d] = values[0] + frac * (values[1] - values[0])
        return np.clip(out, self.min, self.max)

    def quantile_error_bound(self) -> np.ndarray:
        return self.width.copy()

    def result(self) -> dict[str, list[float] | int]:
        if self.count == 0:
            raise ValueError("no values were added to these statistics")
        std = np.sqrt(self.m2 / self.count)
        out: dict[str, list[float] | int] = {
            "count": int(self.count),
            "mean": self.mean.tolist(),
            "std": std.tolist(),
            "min": self.min.tolist(),
            "max": self.max.tolist(),
        }
        for name, q in QUANTILES.items():
            out[name] = self.quantile(q).tolist()
        out["quantile_error_bound"] = self.quantile_error_bound().tolist()
        return out
