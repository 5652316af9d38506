"""Where the buffers of each column of each record batch lie in an Arrow IPC file.

pyarrow reads a column of a record batch whole; a remote sample needs a few rows of it. This reads
the two flatbuffers that say where everything is (Arrow's `File.fbs` footer and `Message.fbs`
record-batch header, parsed directly: pyarrow exposes neither) so a reader can fetch the byte
ranges of the rows it needs and rebuild arrays with `pa.Array.from_buffers`.

File layout (Arrow columnar format, "IPC File Format"):

    ARROW1\\0\\0 | schema message | record batch messages ... | footer flatbuffer | int32 size | ARROW1

Each record batch message is `0xFFFFFFFF, int32 n, flatbuffer (n bytes)` then its body; the footer's
`Block` gives the message's file offset, metadata length (prefix included) and body length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

MAGIC = b"ARROW1"
TAIL = 10  # int32 footer size + "ARROW1"


class _Table:
    """A flatbuffer table: fields by slot number through its vtable."""

    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vtable_size = struct.unpack_from("<H", buf, self.vtable)[0]

    def _offset(self, slot: int) -> int:
        entry = 4 + 2 * slot
        return struct.unpack_from("<H", self.buf, self.vtable + entry)[0] if entry < self.vtable_size else 0

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        offset = self._offset(slot)
        return struct.unpack_from(fmt, self.buf, self.pos + offset)[0] if offset else default

    def table(self, slot: int) -> _Table | None:
        offset = self._offset(slot)
        if not offset:
            return None
        at = self.pos + offset
        return _Table(self.buf, at + struct.unpack_from("<I", self.buf, at)[0])

    def structs(self, slot: int, fmt: str) -> np.ndarray:
        """A vector of fixed-size structs as a 2-d int64 array, one row per struct."""
        offset = self._offset(slot)
        width = struct.calcsize(fmt)
        if not offset:
            return np.zeros((0, len(struct.unpack(fmt, bytes(width)))), np.int64)
        at = self.pos + offset
        start = at + struct.unpack_from("<I", self.buf, at)[0]
        count = struct.unpack_from("<I", self.buf, start)[0]
        rows = [struct.unpack_from(fmt, self.buf, start + 4 + i * width) for i in range(count)]
        return np.array(rows, np.int64).reshape(count, -1)


def _root(buf: bytes) -> _Table:
    return _Table(buf, struct.unpack_from("<I", buf, 0)[0])


def footer_size(tail: bytes) -> int:
    """Size of the footer flatbuffer, from the file's last 10 bytes."""
    if tail[-6:] != MAGIC:
        raise ValueError("not an Arrow IPC file (no ARROW1 at its end)")
    return struct.unpack_from("<i", tail, len(tail) - TAIL)[0]


def record_batch_blocks(footer: bytes) -> np.ndarray:
    """`[n, 3]` int64: file offset, metadata length and body length of every record batch."""
    # struct Block { offset: long; metaDataLength: int; (4 bytes padding) bodyLength: long; }
    return _root(footer).structs(3, "<qi4xq")


def schema_message_span(head: bytes) -> tuple[int, int]:
    """(offset, length) of the schema message that follows the leading magic (head: >= 16 bytes)."""
    if head[:6] != MAGIC:
        raise ValueError("not an Arrow IPC file (no ARROW1 at its start)")
    marker, length = struct.unpack_from("<Ii", head, 8)
    if marker != 0xFFFFFFFF:  # pre-1.0 files have no continuation marker
        return 8, 4 + marker
    return 8, 8 + length


@dataclass(frozen=True)
class BatchLayout:
    """One record batch: rows, `nodes` `[fields, 2]` (length, null_count), `buffers` `[n, 2]`
    (offset, length) relative to the body, and whether the buffers are compressed."""

    rows: int
    nodes: np.ndarray
    buffers: np.ndarray
    compressed: bool


def batch_layout(metadata: bytes) -> BatchLayout:
    """Parse a record batch message's metadata (continuation marker and length prefix included)."""
    start = 8 if metadata[:4] == b"\xff\xff\xff\xff" else 4
    message = _root(metadata[start:])
    # table Message { version; header_type; header; bodyLength; custom_metadata }
    if message.scalar(1, "<B") != 3:  # MessageHeader.RecordBatch
        raise ValueError("the block does not hold a record batch message")
    batch = message.table(2)
    # table RecordBatch { length; nodes: [FieldNode]; buffers: [Buffer]; compression; variadic... }
    return BatchLayout(
        rows=batch.scalar(0, "<q"),
        nodes=batch.structs(1, "<qq"),
        buffers=batch.structs(2, "<qq"),
        compressed=batch.table(3) is not None,
    )


def _counts(dtype: pa.DataType) -> tuple[int, int]:
    """(field nodes, buffers) one column of `dtype` occupies in a record batch, children included."""
    if pa.types.is_fixed_size_list(dtype):
        nodes, buffers = _counts(dtype.value_type)
        return 1 + nodes, 1 + buffers
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        nodes, buffers = _counts(dtype.value_type)
        return 1 + nodes, 2 + buffers
    if pa.types.is_struct(dtype):
        parts = [_counts(dtype.field(i).type) for i in range(dtype.num_fields)]
        return 1 + sum(p[0] for p in parts), 1 + sum(p[1] for p in parts)
    if pa.types.is_null(dtype):
        return 1, 0
    if pa.types.is_binary_view(dtype) or pa.types.is_string_view(dtype) or pa.types.is_dictionary(dtype):
        raise ValueError(f"column type {dtype} is not supported by ranged reads")
    if pa.types.is_binary(dtype) or pa.types.is_string(dtype):
        return 1, 3
    if pa.types.is_large_binary(dtype) or pa.types.is_large_string(dtype):
        return 1, 3
    return 1, 2  # fixed-width: validity + values (bool: bit-packed values)


def column_positions(schema: pa.Schema) -> dict[str, tuple[int, int]]:
    """Column name -> (first field node, first buffer) in every record batch of `schema`."""
    out, node, buffer = {}, 0, 0
    for field in schema:
        out[field.name] = (node, buffer)
        nodes, buffers = _counts(field.type)
        node, buffer = node + nodes, buffer + buffers
    return out
