"""Quantile and z-score normalizers and zero-padding of feature dimensions (DESIGN section 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from vla_data.errors import VlaDataError

NormMode = Literal["quantile", "zscore"]
EPS = 1e-6


@dataclass(frozen=True)
class Normalizer:
    """Maps values of one feature to about [-1, 1] (`quantile`, pi0.5's default) or to unit variance.

    `quantile`: (x - q01) / (q99 - q01 + 1e-6) * 2 - 1;  `zscore`: (x - mean) / (std + 1e-6).
    """

    mode: NormMode
    offset: np.ndarray  # [D]
    scale: np.ndarray  # [D]
    clip: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("quantile", "zscore"):
            raise VlaDataError(f"unknown normalization mode {self.mode!r}; use 'quantile' or 'zscore'")
        if self.offset.shape != self.scale.shape:
            raise VlaDataError(f"normalizer offset {self.offset.shape} and scale {self.scale.shape} differ")

    @classmethod
    def from_stats(cls, stats: dict, mode: NormMode = "quantile", *, clip: bool = False) -> Normalizer:
        needed = ("q01", "q99") if mode == "quantile" else ("mean", "std")
        missing = [k for k in needed if k not in stats]
        if missing:
            raise VlaDataError(
                f"normalization stats lack {missing}; run `vla-data stats OUT` to recompute them"
            )
        if mode == "quantile":
            q01, q99 = np.asarray(stats["q01"], np.float64), np.asarray(stats["q99"], np.float64)
            return cls(mode, offset=q01, scale=(q99 - q01 + EPS) / 2, clip=clip)
        mean, std = np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64)
        return cls(mode, offset=mean, scale=std + EPS, clip=clip)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """float64 `(x - offset) / scale` (then - 1 for quantile, clipped if `clip`): one new array,
        each step in place on it (the same values as step by step)."""
        y = np.subtract(x, self.offset, dtype=np.float64)
        y /= self.scale
        if self.mode == "quantile":
            y -= 1.0
        return np.clip(y, -1.0, 1.0, out=y) if self.clip else y

    def unnormalize(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, np.float64)
        if self.mode == "quantile":
            y = y + 1.0
        return y * self.scale + self.offset


def pad_dims(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad the last axis to `dim`; returns the padded array and the `[dim]` mask of real dims."""
    real = x.shape[-1]
    if real > dim:
        raise VlaDataError(f"feature has {real} dimensions, more than the model dimension {dim}")
    padded = np.zeros((*x.shape[:-1], dim), dtype=x.dtype)
    padded[..., :real] = x
    mask = np.zeros(dim, dtype=bool)
    mask[:real] = True
    return padded, mask
