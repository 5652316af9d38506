"""`tf.train.Example` decoding without protobuf or TensorFlow.

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }   # entries: { string key = 1; Feature value = 2; }
    Feature  { oneof { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }  FloatList { repeated float value = 1; }  Int64List { repeated int64 value = 1; }

Floats and int64s may be packed (one length-delimited field) or not; both are read. Every element
of every list is kept.
"""

from __future__ import annotations

import numpy as np

from vla_data.errors import VlaDataError


class ExampleError(VlaDataError):
    """The bytes are not a well-formed tf.train.Example."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ExampleError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ExampleError("varint longer than 10 bytes")


def _fields(buf: memoryview):
    """(field number, wire type, value) of a message; value is an int or a memoryview."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ExampleError(f"field {field} needs {size} bytes, {len(buf) - pos} left")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            if pos + 4 > len(buf):
                raise ExampleError("truncated fixed32")
            value, pos = buf[pos : pos + 4], pos + 4
        elif wire == 1:
            if pos + 8 > len(buf):
                raise ExampleError("truncated fixed64")
            value, pos = buf[pos : pos + 8], pos + 8
        else:
            raise ExampleError(f"unsupported wire type {wire} for field {field}")
        yield field, wire, value


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _int64_list(buf: memoryview) -> np.ndarray:
    values = []
    for field, wire, value in _fields(buf):
        if field != 1:
            continue
        if wire == 0:
            values.append(_int64(value))
        elif wire == 2:
            pos = 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                values.append(_int64(item))
        else:
            raise ExampleError(f"int64_list value with wire type {wire}")
    return np.array(values, dtype=np.int64)


def _float_list(buf: memoryview) -> np.ndarray:
    parts = []
    for field, wire, value in _fields(buf):
        if field != 1:
            continue
        if wire not in (2, 5) or len(value) % 4:
            raise ExampleError(f"float_list value with wire type {wire} and {len(value)} bytes")
        parts.append(np.frombuffer(value, dtype="<f4"))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _bytes_list(buf: memoryview) -> list[bytes]:
    return [bytes(value) for field, wire, value in _fields(buf) if field == 1 and wire == 2]


def parse_example(data: bytes) -> dict[str, np.ndarray | list[bytes]]:
    """Feature name -> float32 array, int64 array, or list of bytes; `ExampleError` on bad bytes."""
    try:
        return _parse_example(data)
    except UnicodeDecodeError as e:
        raise ExampleError(f"feature name is not UTF-8 ({e})") from e


def _parse_example(data: bytes) -> dict[str, np.ndarray | list[bytes]]:
    out: dict[str, np.ndarray | list[bytes]] = {}
    for field, wire, features in _fields(memoryview(data)):
        if field != 1 or wire != 2:
            continue
        for entry_field, entry_wire, entry in _fields(features):
            if entry_field != 1 or entry_wire != 2:
                continue
            key, value = None, None
            for f, w, v in _fields(entry):
                if f == 1 and w == 2:
                    key = bytes(v).decode("utf-8")
                elif f == 2 and w == 2:
                    value = v
            if key is None:
                raise ExampleError("feature map entry without a key")
            out[key] = _feature(value if value is not None else memoryview(b""))
    return out


def _feature(buf: memoryview):
    for field, wire, value in _fields(buf):
        if wire != 2:
            continue
        if field == 1:
            return _bytes_list(value)
        if field == 2:
            return _float_list(value)
        if field == 3:
            return _int64_list(value)
    return np.zeros(0, np.float32)  # a Feature with no kind set: an empty list


def _key(field: int, wire: int) -> bytes:
    return _encode_varint(field << 3 | wire)


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _delimited(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _encode_varint(len(payload)) + payload


def encode_example(features: dict[str, np.ndarray | list[bytes]]) -> bytes:
    """Serialize a tf.train.Example (packed floats and ints), for tests and sample data."""
    entries = b""
    for name, value in features.items():
        if isinstance(value, list):
            inner = _delimited(1, b"".join(_delimited(1, v) for v in value))
        elif np.asarray(value).dtype.kind == "f":
            packed = np.asarray(value, "<f4").reshape(-1).tobytes()
            inner = _delimited(2, _delimited(1, packed) if packed else b"")
        else:
            packed = b"".join(_encode_varint(int(v)) for v in np.asarray(value).reshape(-1))
            inner = _delimited(3, _delimited(1, packed) if packed else b"")
        entries += _delimited(1, _delimited(1, name.encode()) + _delimited(2, inner))
    return _delimited(1, entries)
