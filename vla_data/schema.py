"""Canonical feature names, feature descriptions and the Arrow schema of a shard (format 1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

FORMAT_VERSION = 1

ACTION = "action"
STATE = "observation.state"
IMAGE_PREFIX = "observation.images."
INDEX_COLUMNS = {
    "episode_index": pa.int64(),
    "frame_index": pa.int32(),
    "timestamp": pa.float32(),
    "task_index": pa.int32(),
}

FeatureKind = Literal["action", "state", "image", "scalar", "array", "text", "list"]
# kind "list": a variable-length list per row (web samples' turns, images, boxes); `dtype` is the
# element type ("string", "binary" or a numeric dtype) and `shape` the per-element shape.
LIST_ELEMENT_TYPES = {"string": pa.string(), "binary": pa.binary()}
NUMERIC_DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
)


@dataclass(frozen=True)
class Feature:
    """One stored column: its dtype and per-step shape, and for images the encoding and size."""

    name: str
    kind: FeatureKind
    dtype: str
    shape: tuple[int, ...]
    names: tuple[str, ...] | None = None
    encoding: str | None = None  # images: "jpeg" or "png"
    height: int | None = None
    width: int | None = None
    original_height: int | None = None  # images resized at conversion keep their source size here
    original_width: int | None = None

    def arrow_type(self) -> pa.DataType:
        if self.kind == "image":
            return pa.binary()
        if self.kind == "text":
            return pa.string()
        if self.kind == "list":
            return pa.list_(self.element_type())
        value_type = pa.from_numpy_dtype(np.dtype(self.dtype))
        if self.shape == ():
            return value_type
        return pa.list_(value_type, int(np.prod(self.shape)))

    def element_type(self) -> pa.DataType:
        """The Arrow type of one element of a `list` feature."""
        value = LIST_ELEMENT_TYPES.get(self.dtype) or pa.from_numpy_dtype(np.dtype(self.dtype))
        return pa.list_(value, int(np.prod(self.shape))) if self.shape else value

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None and k != "name"}
        data["shape"] = list(self.shape)
        if self.names is not None:
            data["names"] = list(self.names)
        return data

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> Feature:
        names = data.get("names")
        return cls(
            name=name,
            kind=data["kind"],
            dtype=data["dtype"],
            shape=tuple(data["shape"]),
            names=tuple(names) if names is not None else None,
            encoding=data.get("encoding"),
            height=data.get("height"),
            width=data.get("width"),
            original_height=data.get("original_height"),
            original_width=data.get("original_width"),
        )


def kind_of(name: str) -> FeatureKind:
    if name == ACTION:
        return "action"
    if name == STATE:
        return "state"
    if name.startswith(IMAGE_PREFIX):
        return "image"
    return "array"


def list_feature(name: str, arrow_type: pa.DataType) -> Feature:
    """Describe a `list<element>` column (one variable-length list per row)."""
    element = arrow_type.value_type
    shape: tuple[int, ...] = ()
    if pa.types.is_fixed_size_list(element):
        shape, element = (element.list_size,), element.value_type
    names = {v: k for k, v in LIST_ELEMENT_TYPES.items()}
    names.update({pa.from_numpy_dtype(np.dtype(n)): n for n in NUMERIC_DTYPES})
    dtype = names[element]
    return Feature(name=name, kind="list", dtype=dtype, shape=shape)


def array_feature(name: str, values: np.ndarray, names: tuple[str, ...] | None = None) -> Feature:
    """Describe a `[T, ...]` array column; scalars per step get kind `scalar`; an Arrow list array
    (web samples) gets kind `list`."""
    if isinstance(values, pa.Array):
        return list_feature(name, values.type)
    if values.dtype.kind in "OUS":
        return Feature(name=name, kind="text", dtype="string", shape=())
    shape = tuple(int(s) for s in values.shape[1:])
    kind = kind_of(name) if shape else "scalar"
    return Feature(name=name, kind=kind, dtype=str(values.dtype), shape=shape, names=names)


def image_feature(
    camera: str, encoding: str, height: int, width: int, original: tuple[int, int] | None = None
) -> Feature:
    resized = original is not None and original != (height, width)
    return Feature(
        name=IMAGE_PREFIX + camera,
        kind="image",
        dtype="binary",
        shape=(height, width, 3),
        encoding=encoding,
        height=height,
        width=width,
        original_height=original[0] if resized else None,
        original_width=original[1] if resized else None,
    )


def arrow_schema(features: dict[str, Feature]) -> pa.Schema:
    fields = [pa.field(name, dtype, nullable=False) for name, dtype in INDEX_COLUMNS.items()]
    fields += [pa.field(f.name, f.arrow_type(), nullable=False) for f in features.values()]
    return pa.schema(fields, metadata={"vla_data.format_version": str(FORMAT_VERSION)})


def column_to_numpy(column: pa.Array | pa.ChunkedArray, feature: Feature) -> np.ndarray:
    """A numeric column as a `[N, *shape]` numpy array (zero-copy where Arrow allows it)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if feature.shape == ():
        return column.to_numpy(zero_copy_only=False)
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape((len(column), *feature.shape))
