"""Rows of n token sequences, each the concatenation of the same parts, built without a per-row loop.

    join_rows([np.array([7]), (np.array([1, 2, 3]), np.array([2, 1]))], n=2, pad=0)
    -> rows [[7, 1, 2], [7, 3, 0]], starts [[0, 1, 3], [0, 1, 2]]

A part is either one array that every row gets (BOS, "Action: ") or a ragged part: flat `values`
with `lengths [n]`, row i taking the next `lengths[i]` of them (prefix ids, FAST ids).
"""

from __future__ import annotations

import numpy as np

Part = np.ndarray | tuple[np.ndarray, np.ndarray]


def join_rows(parts: list[Part], n: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """`[n, W]` int64 rows (W the longest; padded with `pad`), row i the concatenation of every
    part's row i, and `[n, len(parts) + 1]` the column where each part starts in its row (the last
    column: the row's length)."""
    sizes = np.empty((n, len(parts)), np.int64)
    for k, part in enumerate(parts):
        sizes[:, k] = part[1] if isinstance(part, tuple) else len(part)
    starts = np.zeros((n, len(parts) + 1), np.int64)
    np.cumsum(sizes, axis=1, out=starts[:, 1:])
    width = int(starts[:, -1].max()) if n else 0
    rows = np.full((n, width), pad, np.int64)
    column = np.arange(width)
    for k, part in enumerate(parts):
        if isinstance(part, tuple):  # its columns, row after row, are its values in order
            rows[(column >= starts[:, k, None]) & (column < starts[:, k + 1, None])] = part[0]
        elif k == 0:  # every row starts with it
            rows[:, : len(part)] = part
        elif len(part):
            rows[np.arange(n)[:, None], starts[:, k, None] + np.arange(len(part))] = part
    return rows, starts
