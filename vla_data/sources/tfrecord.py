"""TFRecord framing, read without TensorFlow, both CRCs checked.

Each record is: uint64 length | uint32 masked CRC32C of the length bytes | data | uint32 masked
CRC32C of the data, all little-endian, where masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8.
"""

from __future__ import annotations

import atexit
import functools
import gzip
import os
import struct
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import crc32c

from vla_data.errors import SourceError

MASK_DELTA = 0xA282EAD8
HEADER = struct.Struct("<QI")


def masked_crc32c(data: bytes) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _open(path: str):
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def _gzip_errors(func):
    """For record generators: a damaged GZIP stream surfaces as `SourceError` naming the file."""

    @functools.wraps(func)
    def wrapper(path, *args, **kwargs):
        try:
            yield from func(path, *args, **kwargs)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise SourceError(f"damaged GZIP stream ({e})", file=str(path)) from e

    return wrapper


def _read_exact(f, size: int, path: str, offset: int, what: str) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise SourceError(
            f"truncated TFRecord: {what} at byte offset {offset} needs {size} bytes, file has {len(data)}",
            file=path,
        )
    return data


def _header(f, path: str, offset: int) -> int | None:
    """Length of the record starting at `offset`, None at a clean end of file."""
    head = f.read(HEADER.size)
    if not head:
        return None
    if len(head) != HEADER.size:
        raise SourceError(
            f"truncated TFRecord: record header at byte offset {offset} has {len(head)} of 12 bytes",
            file=path,
        )
    length, length_crc = HEADER.unpack(head)
    if masked_crc32c(head[:8]) != length_crc:
        raise SourceError(
            f"CRC mismatch in the length of the record at byte offset {offset} (corrupt file)", file=path
        )
    return length


@_gzip_errors
def record_offsets(path: str) -> Iterator[tuple[int, int]]:
    """(offset, length) of every record, reading only headers (length CRCs checked)."""
    size = None if is_gzip(path) else Path(path).stat().st_size  # a GZIP stream's size is unknown
    with _open(path) as f:
        offset = 0
        while (length := _header(f, path, offset)) is not None:
            f.seek(length + 4, 1)
            end = offset + HEADER.size + length + 4
            if f.tell() != end or (size is not None and end > size):
                raise SourceError(
                    f"truncated TFRecord: the record at byte offset {offset} ends past the end of the file",
                    file=path,
                )
            yield offset, length
            offset = end


def read_record(path: str, offset: int) -> bytes:
    """The data of the record at `offset`, both CRCs checked."""
    try:
        return _read_record(path, offset)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise SourceError(f"damaged GZIP stream ({e})", file=str(path)) from e


def _read_record(path: str, offset: int) -> bytes:
    if not is_gzip(path):
        with open(path, "rb") as f:
            return _record_at(f, path, offset)
    stream = _gzip_stream(path, offset)
    before = stream.raw.tell()
    try:
        return _record_at(stream.gzip, path, offset)
    except BaseException:
        _STREAMS.pop(stream.key, None)
        stream.close()
        raise
    finally:
        GZIP_COUNTS["compressed_bytes"] += stream.raw.tell() - before


def _record_at(f, path: str, offset: int) -> bytes:
    f.seek(offset)
    length = _header(f, path, offset)
    if length is None:
        raise SourceError(f"no record at byte offset {offset}", file=path)
    return _checked_data(f, path, offset, length)


# A GZIP stream cannot seek: reaching a record means decompressing everything before it. Each
# process keeps its open streams (a few, LRU), so consecutive episodes of a file continue one
# sequential pass instead of decompressing from byte 0 per episode.
OPEN_STREAMS = 2
GZIP_COUNTS = {"compressed_bytes": 0, "opens": 0}  # read by this process (for tests, benchmarks)


class _GzipStream:
    def __init__(self, path: str, key: tuple):
        self.key = key
        self.raw = open(path, "rb")
        self.gzip = gzip.GzipFile(fileobj=self.raw, mode="rb")
        GZIP_COUNTS["opens"] += 1

    def close(self) -> None:
        self.gzip.close()
        self.raw.close()


_STREAMS: OrderedDict[tuple, _GzipStream] = OrderedDict()


@atexit.register
def _close_all() -> None:
    while _STREAMS:
        _STREAMS.popitem()[1].close()


def _gzip_stream(path: str, offset: int) -> _GzipStream:
    """An open stream of `path` positioned at or before `offset` (reopened only to go back)."""
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size)  # a rewritten file gets a new stream
    stream = _STREAMS.pop(key, None)
    if stream is not None and stream.gzip.tell() > offset:
        stream.close()
        stream = None
    stream = stream or _GzipStream(path, key)
    _STREAMS[key] = stream
    while len(_STREAMS) > OPEN_STREAMS:
        _STREAMS.popitem(last=False)[1].close()
    return stream


def _checked_data(f, path: str, offset: int, length: int) -> bytes:
    data = _read_exact(f, length, path, offset, "record data")
    (data_crc,) = struct.unpack("<I", _read_exact(f, 4, path, offset, "record data CRC"))
    if masked_crc32c(data) != data_crc:
        raise SourceError(
            f"CRC mismatch in the data of the record at byte offset {offset} (corrupt file)", file=path
        )
    return data


@_gzip_errors
def iter_records(path: str) -> Iterator[tuple[int, bytes]]:
    """(offset, data) of every record in order, both CRCs checked."""
    with _open(path) as f:
        offset = 0
        while (length := _header(f, path, offset)) is not None:
            yield offset, _checked_data(f, path, offset, length)
            offset += HEADER.size + length + 4


def write_records(path: str, records: list[bytes], *, compress: bool = False) -> None:
    """Write records with correct framing (for tests and sample data)."""
    with gzip.open(path, "wb") if compress else open(path, "wb") as f:
        for data in records:
            length = struct.pack("<Q", len(data))
            f.write(
                length
                + struct.pack("<I", masked_crc32c(length))
                + data
                + struct.pack("<I", masked_crc32c(data))
            )
