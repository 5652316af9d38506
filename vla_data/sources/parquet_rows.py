"""Row ranges of large parquet files, read forward so consecutive episodes share one pass.

A LeRobot v3.0 data file holds thousands of episodes; the episode table gives each one's row range.
`read_rows(path, start, stop)` decodes only the row groups that overlap the range, and keeps a
cursor per file (a few files per process, LRU): when the next episode starts where the last one
stopped, as episodes of one file do in a conversion, decoding continues from the cursor instead of
from the start of the row group. Rows decoded per episode are its own plus at most one batch, or
one row group when a cursor has to start over (a worker's first episode of a file, or a jump back).
Metadata in memory is a run of row groups' (`parquet_footer`, `FOOTER_WINDOW`): `lerobot` writes a
row group per episode, and pyarrow would hold the parsed footer of all of them (~7 KB each) while the
file is open. A file of one huge row group is streamed: a 1 MB read buffer per column (no pre-buffer),
`BATCH_ROWS` rows decoded at a time (measured: Arrow memory peak 0.2 / 2.1 / 3.3 MB reading every
episode of single-row-group files of 0.2 / 3.2 / 9.8 MB; it levels off at the buffers and pages).
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
from vla_data.sources.parquet_footer import FooterError, FooterIndex

BATCH_ROWS = 256  # rows decoded at a time: bounds memory for image columns (a few MB per batch)
OPEN_FILES = 4  # cursors kept per process
FOOTER_WINDOW = 1 << 16  # footer bytes of the row groups decoded through one footer (~0.6 MB parsed)
# rows decoded, footers walked and the largest footer pyarrow parsed, in this process (for tests)
COUNTS = {"rows": 0, "opens": 0, "footer_bytes": 0}


class _Cursor:
    """Forward reader of one parquet file. `position` is the file row of `pending`'s first row.

    Row groups are decoded a run at a time through a footer of that run only (`FooterIndex`), so the
    metadata in memory is bounded by `FOOTER_WINDOW`, however many row groups the file holds; a footer
    that cannot be walked here (encrypted) is read whole by pyarrow instead."""

    def __init__(self, path: str, columns: tuple[str, ...] | None):
        self.path = path
        self.file: pq.ParquetFile | None = None
        try:
            self.footer: FooterIndex | None = FooterIndex(path)
            rows = self.footer.group_rows
            if len(rows):
                self.footer.metadata(0)  # pyarrow takes the footers built from it
        except (FooterError, IndexError, OSError, pa.ArrowInvalid):  # encrypted, or a footer walked wrong
            self.footer = None
            self.file = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)  # streams big row groups
            rows = [
                self.file.metadata.row_group(i).num_rows for i in range(self.file.metadata.num_row_groups)
            ]
        COUNTS["opens"] += 1  # walks the footer: O(row groups), so once per file, not per episode
        self.group_starts = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)])
        self.columns = list(columns) if columns is not None else None
        self.window_end = 0  # row groups before it are in the footer being decoded
        self.batches = None
        self.position = 0
        self.pending: pa.RecordBatch | None = None

    @property
    def num_row_groups(self) -> int:
        return len(self.group_starts) - 1

    def _open(self, group: int) -> None:
        """Decode from the start of row group `group` on (past the last one: nothing left), through
        a footer of the row groups from it that fit in `FOOTER_WINDOW` footer bytes."""
        count = self.num_row_groups
        self.pending, self.position = None, int(self.group_starts[min(group, count)])
        if group >= count:
            self.batches, self.window_end = iter(()), count
            return
        if self.footer is None:
            file, groups, self.window_end = self.file, range(group, count), count
        else:
            self.window_end = self.footer.window_end(group, FOOTER_WINDOW)
            metadata = self.footer.metadata(group, self.window_end)
            COUNTS["footer_bytes"] = max(COUNTS["footer_bytes"], metadata.serialized_size)
            file = pq.ParquetFile(self.path, metadata=metadata, buffer_size=1 << 20, pre_buffer=False)
            groups = range(self.window_end - group)
        self.batches = file.iter_batches(
            batch_size=BATCH_ROWS, row_groups=groups, columns=self.columns, use_threads=False
        )

    def _next_batch(self) -> pa.RecordBatch | None:
        while (batch := next(self.batches, None)) is None:
            if self.window_end >= self.num_row_groups:
                return None
            self._open(self.window_end)
        return batch

    def read(self, start: int, stop: int) -> pa.Table:
        decoded_end = self.position + (self.pending.num_rows if self.pending is not None else 0)
        if self.batches is None or start < self.position or self._group(start) > self._group(decoded_end):
            self._open(self._group(start))  # backwards, or whole row groups to skip: skip them undecoded
        pieces = []
        while self.position < stop:
            if self.pending is None:
                self.pending = self._next_batch()
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
        schema = self._schema()
        return schema.empty_table().select(self.columns or schema.names)

    def _schema(self) -> pa.Schema:
        if self.file is None and self.num_row_groups:
            return pq.ParquetFile(self.path, metadata=self.footer.metadata(0)).schema_arrow
        return (self.file or pq.ParquetFile(self.path)).schema_arrow  # no row group: a tiny footer

    def _group(self, row: int) -> int:
        return int(np.searchsorted(self.group_starts, row, side="right")) - 1

    def close(self) -> None:
        if self.file is not None:
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
