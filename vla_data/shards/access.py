"""Reading the rows of one record batch of one shard: memory-mapped locally, ranged reads remotely.

`MappedShard` serves a local (or cached) shard file: uncompressed shards are one zero-copy table;
compressed ones decompress only the record batch and columns asked for, keeping a few decoded
batches (never the whole shard). `RemoteShard` serves a shard on a pyarrow filesystem with ranged
reads of exactly the rows and columns asked for (whole column buffers of the batch only when the
shard is compressed or a column is nested).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from vla_data.errors import ShardError
from vla_data.shards.ipc_layout import (
    TAIL,
    BatchLayout,
    batch_layout,
    column_positions,
    footer_size,
    record_batch_blocks,
    schema_message_span,
)
from vla_data.shards.pages import map_file

DECODED_BATCHES = 4  # decoded record batches a compressed shard keeps per process
LAYOUTS = 256  # parsed record-batch headers a remote shard keeps per process


@dataclass
class ReadCounter:
    """Bytes and requests fetched from remote storage by this process."""

    bytes: int = 0
    requests: int = 0


def _select(table: pa.Table, columns: list[str] | None) -> pa.Table:
    return table if columns is None else table.select(columns)


class MappedShard:
    """A shard file on local disk, memory-mapped (its pages under the process's page budget,
    `vla_data.shards.pages`)."""

    def __init__(self, path: str):
        self.path = path
        try:
            self.file = pa.BufferReader(map_file(path))
            reader = pa.ipc.open_file(self.file)
            self.compressed = reader.num_record_batches > 0 and _first_batch_compressed(self.file)
            self.table = None if self.compressed else reader.read_all()
        except (OSError, pa.ArrowInvalid, ValueError) as e:
            raise ShardError(f"{path}: cannot be read as an Arrow IPC file ({e})") from e
        self.schema = reader.schema
        self._readers: dict[tuple[str, ...], pa.ipc.RecordBatchFileReader] = {}
        self._decoded: OrderedDict = OrderedDict()

    def rows(self, batch: int, offset: int, start: int, stop: int, columns: list[str] | None) -> pa.Table:
        """Rows `start:stop` of record batch `batch`, which begins at row `offset` of the shard."""
        if self.table is not None:
            return _select(self.table.slice(offset + start, stop - start), columns)
        names = tuple(self.schema.names if columns is None else columns)
        key = (batch, names)
        table = self._decoded.get(key)
        if table is None:
            reader = self._readers.get(names)
            if reader is None:
                fields = [self.schema.get_field_index(n) for n in names]
                options = pa.ipc.IpcReadOptions(included_fields=fields)
                reader = self._readers[names] = pa.ipc.open_file(self.file, options=options)
            table = pa.Table.from_batches([reader.get_batch(batch)]).select(list(names))
            self._decoded[key] = table
            while len(self._decoded) > DECODED_BATCHES:
                self._decoded.popitem(last=False)
        self._decoded.move_to_end(key)
        return table.slice(start, stop - start)

    def whole(self) -> pa.Table:
        if self.table is not None:
            return self.table
        return pa.ipc.open_file(self.file).read_all()


def _first_batch_compressed(file: pa.NativeFile) -> bool:
    size = file.size()
    footer_len = footer_size(file.read_at(TAIL, size - TAIL))
    blocks = record_batch_blocks(file.read_at(footer_len, size - TAIL - footer_len))
    offset, meta_len, _ = (int(v) for v in blocks[0])
    return batch_layout(file.read_at(meta_len, offset)).compressed


class _CountingFile:
    """A Python file over a native remote file whose reads are counted (for pyarrow's own reader)."""

    def __init__(self, native: pa.NativeFile, counter: ReadCounter):
        self.native, self.counter, self.pos, self.closed = native, counter, 0, False

    def read(self, n: int = -1) -> bytes:
        n = self.native.size() - self.pos if n < 0 else n
        data = self.native.read_at(n, self.pos)
        self.pos += len(data)
        self.counter.bytes += len(data)
        self.counter.requests += 1
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = pos if whence == 0 else self.pos + pos if whence == 1 else self.native.size() + pos
        return self.pos

    def tell(self) -> int:
        return self.pos

    def size(self) -> int:
        return self.native.size()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class RemoteShard:
    """A shard on a pyarrow filesystem, read by byte ranges.

    Per process it reads the file's schema message and footer once, each record batch's header
    once (up to `LAYOUTS` kept), then per call only the byte ranges of the rows and columns asked
    for. File handles are reopened after a fork (an inherited HTTP connection is not usable).
    """

    def __init__(self, filesystem: Callable[[], Any], path: str, counter: ReadCounter):
        self.filesystem, self.path, self.counter = filesystem, path, counter  # filesystem(): this process's
        self._file: pa.NativeFile | None = None
        self._pid = -1
        self._blocks: np.ndarray | None = None
        self._layouts: OrderedDict[int, BatchLayout] = OrderedDict()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": -1}

    def _native(self) -> pa.NativeFile:
        if self._pid != os.getpid():
            self._file, self._pid = self.filesystem().open_input_file(self.path), os.getpid()
        return self._file

    def read(self, offset: int, length: int) -> bytes:
        data = self._native().read_at(length, offset)
        if len(data) != length:
            raise ShardError(
                f"{self.path}: {length} bytes asked at {offset}, got {len(data)} (file truncated?)"
            )
        self.counter.bytes += length
        self.counter.requests += 1
        return data

    def _open(self) -> None:
        size = self._native().size()
        footer_len = footer_size(self.read(size - TAIL, TAIL))
        self._blocks = record_batch_blocks(self.read(size - TAIL - footer_len, footer_len))
        head = self.read(0, 16)
        start, length = schema_message_span(head)
        self.schema = pa.ipc.read_schema(pa.py_buffer(self.read(start, length)))
        self.positions = column_positions(self.schema)

    def layout(self, batch: int) -> tuple[int, BatchLayout]:
        """(file offset of the batch body, its layout)."""
        if self._blocks is None:
            self._open()
        offset, meta_len, _ = (int(v) for v in self._blocks[batch])
        layout = self._layouts.get(batch)
        if layout is None:
            layout = self._layouts[batch] = batch_layout(self.read(offset, meta_len))
            while len(self._layouts) > LAYOUTS:
                self._layouts.popitem(last=False)
        self._layouts.move_to_end(batch)
        return offset + meta_len, layout

    def rows(self, batch: int, start: int, stop: int, columns: list[str] | None) -> pa.Table:
        body, layout = self.layout(batch)
        names = self.schema.names if columns is None else columns
        arrays = []
        for name in names:
            field = self.schema.field(name)
            node, buffer = self.positions[name]
            array = None
            if not layout.compressed:
                array = self._ranged(field.type, body, layout, node, buffer, start, stop)
            if array is None:
                array = self._whole_column(batch, name).slice(start, stop - start)
            arrays.append(array)
        return pa.Table.from_arrays(arrays, names=list(names))

    def _ranged(self, dtype, body, layout, node, buffer, start, stop) -> pa.Array | None:
        """Rows start:stop of a column without nulls, from its byte ranges; None for other layouts."""
        n = stop - start
        if layout.nodes[node][1]:  # nulls: rebuilding a validity bitmap slice is not worth it here
            return None
        if pa.types.is_fixed_size_list(dtype):
            child = self._ranged(
                dtype.value_type,
                body,
                layout,
                node + 1,
                buffer + 1,
                start * dtype.list_size,
                stop * dtype.list_size,
            )
            return None if child is None else pa.FixedSizeListArray.from_arrays(child, dtype.list_size)
        if pa.types.is_boolean(dtype):
            return None
        if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
            index = np.dtype(np.int64 if pa.types.is_large_list(dtype) else np.int32)
            where = layout.buffers[buffer + 1]
            offsets = np.frombuffer(
                self.read(body + int(where[0]) + start * index.itemsize, (n + 1) * index.itemsize), index
            )
            child = self._ranged(
                dtype.value_type, body, layout, node + 1, buffer + 2, int(offsets[0]), int(offsets[-1])
            )
            if child is None:
                return None
            rebased = pa.py_buffer((offsets - offsets[0]).astype(index).tobytes())
            return pa.Array.from_buffers(dtype, n, [None, rebased], children=[child])
        if (
            pa.types.is_binary(dtype)
            or pa.types.is_string(dtype)
            or pa.types.is_large_binary(dtype)
            or (pa.types.is_large_string(dtype))
        ):
            width = 8 if pa.types.is_large_binary(dtype) or pa.types.is_large_string(dtype) else 4
            index = np.dtype(np.int64 if width == 8 else np.int32)
            where = layout.buffers[buffer + 1]
            offsets = np.frombuffer(self.read(body + int(where[0]) + start * width, (n + 1) * width), index)
            data_at = body + int(layout.buffers[buffer + 2][0])
            data = self.read(data_at + int(offsets[0]), int(offsets[-1] - offsets[0])) if n else b""
            rebased = pa.py_buffer((offsets - offsets[0]).astype(index).tobytes())
            return pa.Array.from_buffers(dtype, n, [None, rebased, pa.py_buffer(data)])
        if not pa.types.is_primitive(dtype):
            return None
        width = dtype.bit_width // 8
        where = layout.buffers[buffer + 1]
        data = self.read(body + int(where[0]) + start * width, n * width) if n else b""
        return pa.Array.from_buffers(dtype, n, [None, pa.py_buffer(data)])

    def _whole_column(self, batch: int, name: str) -> pa.Array:
        options = pa.ipc.IpcReadOptions(included_fields=[self.schema.get_field_index(name)])
        source = pa.PythonFile(_CountingFile(self._native(), self.counter), mode="r")
        record_batch = pa.ipc.open_file(source, options=options).get_batch(batch)
        return record_batch.column(0)

    def whole(self) -> pa.Table:
        source = pa.PythonFile(_CountingFile(self._native(), self.counter), mode="r")
        return pa.ipc.open_file(source).read_all()
