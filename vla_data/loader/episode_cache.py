"""Bounded per-process caches of the robot loader: numeric episode arrays and FAST id lists.

Both hold views into memory-mapped shards where Arrow allows it, so they cost little private
memory; both are bounded, so a worker's memory stays flat however long it runs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pyarrow as pa

EpisodeArrays = tuple[np.ndarray, np.ndarray | None]  # action [T, Da], observation.state [T, S]


class EpisodeCache:
    """Least-recently-used per-episode numeric arrays: a step of an episode read recently costs a
    dict lookup instead of Arrow calls. At most `max_episodes` entries and `max_bytes` of arrays."""

    def __init__(self, max_episodes: int = 1024, max_bytes: int = 64 << 20):
        self.max_episodes, self.max_bytes = max_episodes, max_bytes
        self._items: OrderedDict[tuple, EpisodeArrays] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: tuple, load: Callable[[], EpisodeArrays]) -> EpisodeArrays:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
            return item
        item = load()
        self._items[key] = item
        self._bytes += _size(item)
        while len(self._items) > 1 and (len(self._items) > self.max_episodes or self._bytes > self.max_bytes):
            _, old = self._items.popitem(last=False)
            self._bytes -= _size(old)
        return item


def _size(item: EpisodeArrays) -> int:
    return sum(a.nbytes for a in item if a is not None)


class IdLists:
    """Row -> FAST ids of a `list<int>` column, as zero-copy numpy views of each record batch."""

    def __init__(self, column: pa.ChunkedArray):
        chunks = [c for c in column.chunks if len(c)]
        self.starts = np.cumsum([0] + [len(c) for c in chunks])
        self.offsets = [c.offsets.to_numpy() for c in chunks]
        self.values = [c.values.to_numpy() for c in chunks]

    def __getitem__(self, row: int) -> np.ndarray:
        c = int(np.searchsorted(self.starts, row, side="right") - 1)
        r = row - int(self.starts[c])
        offsets = self.offsets[c]
        return self.values[c][offsets[r] : offsets[r + 1]]

    def rows(self, rows: np.ndarray) -> list[np.ndarray]:
        """`[self[r] for r in rows]`, with the record batches found in one search."""
        chunks = np.searchsorted(self.starts, rows, side="right") - 1
        out = []
        for c, r in zip(chunks.tolist(), (rows - self.starts[chunks]).tolist(), strict=True):
            offsets = self.offsets[c]
            out.append(self.values[c][offsets[r] : offsets[r + 1]])
        return out


def binary_views(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets `[n + 1]` and data bytes of a binary column, as numpy views of its buffers (no copy
    when the column is one chunk, e.g. an episode of a memory-mapped shard): row i is
    `data[offsets[i]:offsets[i + 1]]` (empty for a null)."""
    array = (
        column
        if isinstance(column, pa.Array)
        else (column.chunk(0) if column.num_chunks == 1 else column.combine_chunks())
    )
    large = pa.types.is_large_binary(array.type)
    width = 8 if large else 4
    _, offsets, data = array.buffers()
    offsets = np.frombuffer(offsets, np.int64 if large else np.int32, len(array) + 1, array.offset * width)
    return offsets, (np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8))
