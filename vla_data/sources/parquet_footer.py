"""One row group of a parquet file without holding the metadata of all the others.

pyarrow parses a file's whole footer into memory (~7 KB per row group of 7 columns, ~9x its
serialized size) and keeps it while the file is open. A LeRobot v3.0 data file written by
`lerobot` holds one row group per episode, thousands per file, so reading it would cost memory in
proportion to the file. `FooterIndex` walks the footer once (Thrift compact protocol, in windows
of `WINDOW` bytes) and keeps only where each row group's description starts and ends and its row
count (24 bytes per row group). `metadata(k)` builds a footer holding only row group `k` (plus the
schema, key-value metadata such as the Arrow schema, `created_by` and column orders, copied byte
for byte) that pyarrow reads as a one-row-group file over the same data pages; `metadata(k, stop)`
does the same for the consecutive row groups `k` to `stop`.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

WINDOW = 1 << 20  # footer bytes read at a time while walking it
# Thrift compact types
_BOOL_TRUE, _BOOL_FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
_ROW_GROUPS, _NUM_ROWS = 4, 3  # FileMetaData fields
_RG_NUM_ROWS = 3  # RowGroup.num_rows


class FooterError(ValueError):
    """The footer cannot be walked here (encrypted, or not what the format says)."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _skip(buf: bytes, pos: int, kind: int) -> int:
    """Position after a value of compact type `kind` starting at `pos` (IndexError: runs past `buf`)."""
    if kind == _STRUCT:
        return _skip_struct(buf, pos)
    if kind in (_I16, _I32, _I64):
        while buf[pos] & 0x80:
            pos += 1
        return pos + 1
    if kind == _BINARY:
        size, pos = _varint(buf, pos)
        return pos + size
    if kind in (_LIST, _SET):
        return _skip_list(buf, pos)
    if kind in (_BOOL_TRUE, _BOOL_FALSE):  # a struct field's value is in its type nibble
        return pos
    if kind == _BYTE:
        return pos + 1
    if kind == _DOUBLE:
        return pos + 8
    if kind == _MAP:
        size, pos = _varint(buf, pos)
        if size:
            types = buf[pos]
            pos += 1
            for _ in range(size):
                pos = _skip(buf, _skip(buf, pos, types >> 4), types & 0x0F)
        return pos
    raise FooterError(f"unknown Thrift compact type {kind}")


def _skip_struct(buf: bytes, pos: int) -> int:
    """Position after the struct starting at `pos`: the hot loop of the walk, common types inline."""
    while True:
        header = buf[pos]
        pos += 1
        if header == 0:
            return pos
        if header < 0x10:  # long form: the field id follows as a varint
            while buf[pos] & 0x80:
                pos += 1
            pos += 1
        kind = header & 0x0F
        if _I16 <= kind <= _I64:
            while buf[pos] & 0x80:
                pos += 1
            pos += 1
        elif kind == _STRUCT:
            pos = _skip_struct(buf, pos)
        elif kind == _LIST:
            pos = _skip_list(buf, pos)
        elif kind == _BINARY and buf[pos] < 0x80:
            pos += buf[pos] + 1
        elif kind > _BOOL_FALSE:
            pos = _skip(buf, pos, kind)


def _skip_list(buf: bytes, pos: int) -> int:
    header = buf[pos]
    pos += 1
    size, element = header >> 4, header & 0x0F
    if size == 15:
        size, pos = _varint(buf, pos)
    if _I16 <= element <= _I64:
        for _ in range(size):
            while buf[pos] & 0x80:
                pos += 1
            pos += 1
    elif element == _STRUCT:
        for _ in range(size):
            pos = _skip_struct(buf, pos)
    elif element in (_BOOL_TRUE, _BOOL_FALSE, _BYTE):  # one byte each inside a collection
        pos += size
    else:
        for _ in range(size):
            pos = _skip(buf, pos, element)
    return pos


def _field(buf: bytes, pos: int, last: int) -> tuple[int, int, int]:
    """(field id, type, position of the value) of the field header at `pos`; id 0 at the struct's end."""
    header = buf[pos]
    pos += 1
    if header == 0:
        return 0, 0, pos
    if header >> 4:
        return last + (header >> 4), header & 0x0F, pos
    raw, pos = _varint(buf, pos)
    return (raw >> 1) ^ -(raw & 1), header & 0x0F, pos


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag(value: int) -> bytes:
    return _varint_bytes((value << 1) ^ (value >> 63))


def _header(field: int, last: int, kind: int) -> bytes:
    delta = field - last
    return bytes([delta << 4 | kind]) if 0 < delta <= 15 else bytes([kind]) + _zigzag(field)


class _Window:
    """Footer bytes `[base, base + len(buf))` of an open file, read `size` at a time."""

    def __init__(self, fd: int, start: int, end: int):
        self.fd, self.end = fd, end
        self.size = WINDOW
        self.base, self.buf = start, b""

    def parse(self, offset: int, step):
        """`step(buf, pos)` -> (end position, value) for the item at footer offset `offset`, with the
        window moved (and grown) until the whole item is inside it."""
        while True:
            if self.base <= offset and offset + 1 <= self.base + len(self.buf):
                try:
                    end, value = step(self.buf, offset - self.base)
                    if end <= len(self.buf):
                        return self.base + end, value
                except IndexError:
                    pass
                if self.base + len(self.buf) >= self.end:
                    raise FooterError("the footer ends inside a value")
                if self.base == offset:
                    self.size *= 2  # one item larger than the window
            self.base = offset
            self.buf = os.pread(self.fd, min(self.size, self.end - offset), offset)


class FooterIndex:
    """Where each row group's description lies in the footer of the parquet file at `path`."""

    def __init__(self, path: str):
        self.path = path
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            tail = os.pread(fd, 8, size - 8) if size >= 12 else b""
            if len(tail) != 8 or tail[4:] != b"PAR1":  # "PARE": encrypted footer
                raise FooterError("no plain parquet footer")
            length = struct.unpack("<I", tail[:4])[0]
            self.footer_start = size - 8 - length
            if self.footer_start < 4:
                raise FooterError("footer length larger than the file")
            self._walk(fd, self.footer_start, size - 8)
        finally:
            os.close(fd)

    def _walk(self, fd: int, start: int, end: int) -> None:
        window = _Window(fd, start, end)
        self.fields: list[tuple[int, int, bytes]] = []  # (id, type, value bytes); row groups: b""
        offset, last = start, 0
        groups: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        while True:
            offset, (field, kind, value_at) = window.parse(offset, lambda b, p, last=last: _head(b, p, last))
            if field == 0:
                break
            if field == _ROW_GROUPS:
                if kind != _LIST:
                    raise FooterError("row_groups is not a list")
                offset, groups = self._walk_groups(window, offset)
                self.fields.append((field, kind, b""))
            else:
                end_at, _ = window.parse(offset, lambda b, p, kind=kind: (_skip(b, p, kind), None))
                value = os.pread(fd, end_at - offset, offset)
                self.fields.append((field, kind, value))
                offset = end_at
            last = field
        if groups is None:
            raise FooterError("the footer lists no row groups")
        self.group_starts, self.group_ends, self.group_rows = groups

    def _walk_groups(self, window: _Window, offset: int):
        def list_header(buf, pos):
            header = buf[pos]
            pos += 1
            size = header >> 4
            if size == 15:
                size, pos = _varint(buf, pos)
            return pos, (size, header & 0x0F)

        offset, (count, element) = window.parse(offset, list_header)
        if element != _STRUCT:
            raise FooterError("row_groups does not hold structs")
        starts, ends, rows = (np.empty(count, np.int64) for _ in range(3))
        for i in range(count):
            starts[i] = offset
            offset, rows[i] = window.parse(offset, _row_group)
            ends[i] = offset
        return offset, (starts, ends, rows)

    @property
    def num_row_groups(self) -> int:
        return len(self.group_rows)

    def window_end(self, first: int, budget: int) -> int:
        """The end of the run of row groups from `first` whose descriptions take at most `budget`
        footer bytes (at least one row group)."""
        end = int(np.searchsorted(self.group_ends, int(self.group_starts[first]) + budget, side="right"))
        return max(end, first + 1)

    def metadata(self, first: int, stop: int | None = None) -> pq.FileMetaData:
        """A footer holding only row groups `first` to `stop` (default: `first` alone), as pyarrow
        metadata of a file whose row group 0 is row group `first` of this one."""
        stop = first + 1 if stop is None else stop
        fd = os.open(self.path, os.O_RDONLY)
        try:
            start = int(self.group_starts[first])
            row_groups = os.pread(fd, int(self.group_ends[stop - 1]) - start, start)
        finally:
            os.close(fd)
        count = stop - first
        out = bytearray()
        last = 0
        for field, kind, value in self.fields:
            if field == _NUM_ROWS:
                kind, value = _I64, _zigzag(int(self.group_rows[first:stop].sum()))
            elif field == _ROW_GROUPS:
                head = (
                    bytes([count << 4 | _STRUCT])
                    if count < 15
                    else bytes([0xF0 | _STRUCT]) + _varint_bytes(count)
                )
                value = head + row_groups
            out += _header(field, last, kind) + value
            last = field
        out.append(0)
        out += struct.pack("<I", len(out)) + b"PAR1"
        return pq.read_metadata(pa.BufferReader(b"PAR1" + bytes(out)))


def _head(buf: bytes, pos: int, last: int):
    field, kind, pos = _field(buf, pos, last)
    return pos, (field, kind, pos)


def _row_group(buf: bytes, pos: int) -> tuple[int, int]:
    """(end, num_rows) of the RowGroup struct at `pos`."""
    rows, last = 0, 0
    while True:
        field, kind, pos = _field(buf, pos, last)
        if field == 0:
            return pos, rows
        if field == _RG_NUM_ROWS and kind == _I64:
            raw, pos = _varint(buf, pos)
            rows = (raw >> 1) ^ -(raw & 1)
        else:
            pos = _skip(buf, pos, kind)
        last = field
