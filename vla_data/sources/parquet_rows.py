"""Row ranges of large parquet files, read forward so consecutive episodes share one pass.

A LeRobot v3.0 data file holds thousands of episodes; the episode table gives each one's row range.
`read_rows(path, start, stop)` decodes only the row groups that overlap the range, and keeps a
cursor per file (a few files per process, LRU): when the next episode starts where the last one
stopped, as episodes of one file do in a conversion, decoding continues from the cursor instead of
from the start of the row group. Rows decoded per episode are its own plus at most one batch, or
one row group when a cursor has to start over (a worker's first episode of a file, or a jump back).
"""

from __future__ import annotations

import atexit
import os
from collections import OrderedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vla_data.errors import SourceError

BATCH_ROWS = 256  # rows decoded at a time: bounds memory for image columns (a few MB per batch)
OPEN_FILES = 4  # cursors kept per process
COUNTS = {"rows": 0, "opens": 0}  # rows decoded and files opened in this process (for tests, benchmarks)


class _Cursor:
    """Forward reader of one parquet file. `position` is the file row of `pending`'s first row."""

    def __init__(self, path: str, columns: tuple[str, ...] | None):
        self.file = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)  # streams big row groups
        COUNTS["opens"] += 1  # parses the footer: O(row groups), so once per file, not per episode
        meta = self.file.metadata
        self.group_starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
        self.columns = list(columns) if columns is not None else None
        self.batches = None
        self.position = 0
        self.pending: pa.RecordBatch | None = None

    def _restart(self, start: int) -> None:
        """Continue from the row group holding `start` (skipping whole row groups before it)."""
        group = self._group(start)
        groups = range(min(group, self.file.metadata.num_row_groups), self.file.metadata.num_row_groups)
        self.batches = self.file.iter_batches(batch_size=BATCH_ROWS, row_groups=groups, columns=self.columns)
        self.position = int(self.group_starts[groups.start]) if len(groups) else int(self.group_starts[-1])
        self.pending = None

    def read(self, start: int, stop: int) -> pa.Table:
        decoded_end = self.position + (self.pending.num_rows if self.pending is not None else 0)
        if self.batches is None or start < self.position or self._group(start) > self._group(decoded_end):
            self._restart(start)  # backwards, or whole row groups to skip: skip them undecoded
        pieces = []
        while self.position < stop:
            if self.pending is None:
                self.pending = next(self.batches, None)
                if self.pending is None:
                    break
                COUNTS["rows"] += self.pending.num_rows
            end = self.position + self.pending.num_rows
            if end > start:
                low = max(start - self.position, 0)
                pieces.append(self.pending.slice(low, min(stop, end) - self.position - low))
            if end > stop:
                break  # the rest of this batch starts the next episode
            self.position, self.pending = end, None
        if pieces:
            return pa.Table.from_batches(pieces)
        schema = self.file.schema_arrow
        return schema.empty_table().select(self.columns or schema.names)

    def _group(self, row: int) -> int:
        return int(np.searchsorted(self.group_starts, row, side="right")) - 1

    def close(self) -> None:
        self.file.close()


_CURSORS: OrderedDict[tuple, _Cursor] = OrderedDict()


@atexit.register
def _close_all() -> None:
    while _CURSORS:
        _CURSORS.popitem()[1].close()


def read_rows(path: str, start: int, stop: int, columns: tuple[str, ...] | None = None) -> pa.Table:
    """Rows `[start, stop)` of the parquet file at `path` (fewer when the file ends before `stop`)."""
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size, columns)  # a rewritten file gets a new cursor
    cursor = _CURSORS.pop(key, None) or _Cursor(path, columns)
    _CURSORS[key] = cursor
    while len(_CURSORS) > OPEN_FILES:
        _CURSORS.popitem(last=False)[1].close()
    try:
        return cursor.read(start, stop)
    except BaseException:
        _CURSORS.pop(key, None)
        cursor.close()
        raise


def episode_rows(data_file: str, episode: int, rows: list[int] | None) -> pa.Table:
    """One LeRobot episode's rows, in frame order: by its row range `[start, stop)` in the data file
    (v3.0 episode table) through `read_rows`, else (v2.1, or no range) by filtering the file."""
    try:
        if rows is None:
            table = pq.read_table(data_file, filters=[("episode_index", "=", episode)])
        else:
            table = read_rows(data_file, *rows)
    except (OSError, pa.ArrowInvalid) as e:
        raise SourceError(f"cannot read parquet ({e})", file=data_file, episode=episode) from e
    if rows is not None and "episode_index" in table.column_names:
        found = pc.unique(table.column("episode_index")).to_pylist()
        if found and found != [episode]:
            raise SourceError(
                f"rows {rows[0]}..{rows[1]} (dataset_from_index/dataset_to_index) hold episodes "
                f"{found[:5]}; the episode table does not match the data file",
                file=data_file,
                episode=episode,
                key="dataset_from_index",
            )
    if "frame_index" in table.column_names:
        table = table.sort_by("frame_index")
    return table
