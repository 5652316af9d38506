"""Action chunks at a step: the same rule for the loader, the FAST cache and the benchmarks."""

from __future__ import annotations

import numpy as np


def chunk_indices(length: int, start: np.ndarray | int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices `[..., H]` of the chunk starting at `start` in an episode of `length` steps, with
    steps past the end clamped to the last row, and the matching `action_is_pad` mask."""
    steps = np.asarray(start)[..., None] + np.arange(horizon)
    return np.minimum(steps, length - 1), steps >= length


def delta_chunk(chunk: np.ndarray, state: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """Make `dims` of an action chunk `[..., H, D]` relative to the state `[..., S]` at its start."""
    if not dims:
        return chunk
    out = np.array(chunk, dtype=np.float64, copy=True)
    index = list(dims)
    out[..., index] -= np.asarray(state, np.float64)[..., None, index]
    return out
