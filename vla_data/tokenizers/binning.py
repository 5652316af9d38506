"""The naive baseline the FAST paper compares against: 256 uniform bins per dimension over [-1, 1],
one token per dimension per step (T*D tokens per chunk). Same interface as `FastTokenizer`."""

from __future__ import annotations

import numpy as np

from vla_data.errors import TokenizerError


class BinningTokenizer:
    def __init__(self, bins: int = 256, low: float = -1.0, high: float = 1.0):
        self.bins, self.low, self.high = bins, low, high
        self.width = (high - low) / bins

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        chunks = np.asarray(chunks, np.float64)
        if chunks.ndim == 2:
            chunks = chunks[None]
        ids = np.clip(np.floor((chunks - self.low) / self.width), 0, self.bins - 1).astype(np.int64)
        return ids.reshape(len(ids), -1).tolist()

    def decode(
        self, ids: list[list[int]], *, horizon: int, action_dim: int, on_error: str = "flag"
    ) -> tuple[np.ndarray, np.ndarray]:
        actions = np.zeros((len(ids), horizon * action_dim))
        valid = np.zeros(len(ids), dtype=bool)
        for b, seq in enumerate(ids):
            seq = np.asarray(seq, dtype=np.int64)
            ok = len(seq) == horizon * action_dim and ((seq >= 0) & (seq < self.bins)).all()
            if not ok and on_error == "raise":
                raise TokenizerError(f"sequence {b}: expected {horizon * action_dim} ids in [0, {self.bins})")
            if ok or on_error == "relaxed":
                seq = np.clip(seq[: horizon * action_dim], 0, self.bins - 1)
                actions[b, : len(seq)] = self.low + (seq + 0.5) * self.width
            valid[b] = ok
        return actions.reshape(len(ids), horizon, action_dim), valid
