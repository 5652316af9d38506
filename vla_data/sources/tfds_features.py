"""TFDS `features.json` -> flat leaf specs keyed as TFDS flattens them (`steps/observation/image`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from vla_data.errors import SourceError

LeafKind = Literal["tensor", "image", "text"]
SUPPORTED_DTYPES = {
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
}


@dataclass(frozen=True)
class Leaf:
    """One serialized feature. `shape` is per step for features inside `steps` (None = unknown dim)."""

    path: str
    kind: LeafKind
    dtype: str
    shape: tuple[int | None, ...]
    in_steps: bool
    encoding: str | None = None  # images: jpeg / png

    @property
    def static_size(self) -> int | None:
        return None if any(d is None for d in self.shape) else int(np.prod(self.shape, dtype=np.int64))


def _dims(node: dict[str, Any]) -> tuple[int | None, ...]:
    dims = node.get("shape", {}).get("dimensions", [])
    return tuple(None if int(d) < 0 else int(d) for d in dims)


def parse_features(spec: dict[str, Any], file: str = "features.json") -> dict[str, Leaf]:
    """Leaf specs of a TFDS features.json; `SourceError` naming the path for anything malformed."""
    leaves: dict[str, Leaf] = {}
    try:
        _walk(spec, "", False, leaves, file)
    except SourceError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SourceError(
            f"malformed features.json ({type(e).__name__}: {e}); near {sorted(leaves)[-1:] or 'the root'}",
            file=file,
        ) from e
    return leaves


def _walk(node: dict[str, Any], path: str, in_steps: bool, leaves: dict[str, Leaf], file: str) -> None:
    kind = node.get("pythonClassName", "").rsplit(".", 1)[-1]
    where = path or "<root>"
    if kind == "FeaturesDict" or (not kind and "featuresDict" in node):
        for name, child in node["featuresDict"]["features"].items():
            _walk(child, f"{path}/{name}" if path else name, in_steps, leaves, file)
    elif kind in ("Dataset", "Sequence"):
        if in_steps:
            raise SourceError("nested sequences are not supported", file=file, key=where)
        _walk(node["sequence"]["feature"], path, True, leaves, file)
    elif kind in ("Tensor", "Scalar"):
        tensor = node["tensor"]
        if tensor.get("encoding", "none") != "none":
            raise SourceError(
                f"tensor encoding {tensor['encoding']!r} is not supported (only 'none')", file=file, key=where
            )
        if tensor["dtype"] not in SUPPORTED_DTYPES and tensor["dtype"] != "string":
            raise SourceError(f"unsupported tensor dtype {tensor['dtype']!r}", file=file, key=where)
        text = tensor["dtype"] == "string"
        leaves[path] = Leaf(path, "text" if text else "tensor", tensor["dtype"], _dims(tensor), in_steps)
    elif kind == "Image":
        image = node["image"]
        leaves[path] = Leaf(
            path,
            "image",
            image.get("dtype", "uint8"),
            _dims(image),
            in_steps,
            image.get("encodingFormat", "png"),
        )
    elif kind == "Text":
        leaves[path] = Leaf(path, "text", "string", (), in_steps)
    elif kind == "ClassLabel":
        leaves[path] = Leaf(path, "tensor", "int64", (), in_steps)
    else:
        raise SourceError(
            f"unknown feature type {node.get('pythonClassName')!r}; supported: FeaturesDict, Dataset, Sequence, "
            "Tensor, Scalar, Image, Text, ClassLabel",
            file=file,
            key=where,
        )


def decode_leaves(
    example: dict[str, Any], leaves: dict[str, Leaf], file: str, episode: str
) -> tuple[int, dict[str, Any]]:
    """Number of steps and every leaf's value: arrays `[T, *shape]` (steps) or `[*shape]`, lists of
    bytes for images, lists of str for text. Dtypes as TFDS returns them."""
    for key in example:
        if "/ragged_" in key:
            raise SourceError(
                "ragged tensors are not supported; convert this feature with TFDS first",
                file=file,
                episode=episode,
                key=key,
            )
    steps = _count_steps(example, leaves, file, episode)
    out: dict[str, Any] = {}
    for path, leaf in leaves.items():
        if path not in example:
            raise SourceError(
                "feature declared in features.json is missing from the record",
                file=file,
                episode=episode,
                key=path,
            )
        raw = example[path]
        count = steps if leaf.in_steps else 1
        if leaf.kind == "image":
            if not isinstance(raw, list) or len(raw) != count:
                raise SourceError(
                    f"expected {count} encoded images, found {len(raw)}", file=file, episode=episode, key=path
                )
            out[path] = raw if leaf.in_steps else raw[0]
        elif leaf.kind == "text":
            if not isinstance(raw, list):
                raise SourceError(
                    "expected a bytes list for a text feature", file=file, episode=episode, key=path
                )
            texts = [b.decode("utf-8", errors="replace") for b in raw]
            out[path] = texts if leaf.in_steps else (texts[0] if texts else "")
        else:
            out[path] = _tensor(raw, leaf, count, file, episode)
    return steps, out


def _tensor(raw: Any, leaf: Leaf, count: int, file: str, episode: str) -> np.ndarray:
    if isinstance(raw, list):
        raise SourceError("expected numbers, found a bytes list", file=file, episode=episode, key=leaf.path)
    shape = list(leaf.shape)
    unknown = [i for i, d in enumerate(shape) if d is None]
    known = int(np.prod([d for d in shape if d is not None], dtype=np.int64))
    if len(unknown) == 1 and known and count:
        shape[unknown[0]] = len(raw) // (known * count)
    elif unknown:
        raise SourceError(
            f"shape {leaf.shape} has more than one unknown dimension",
            file=file,
            episode=episode,
            key=leaf.path,
        )
    full = (count, *shape) if leaf.in_steps else tuple(shape)
    if len(raw) != int(np.prod(full, dtype=np.int64)):
        raise SourceError(
            f"has {len(raw)} values, expected {full} = {int(np.prod(full))}",
            file=file,
            episode=episode,
            key=leaf.path,
        )
    values = raw != 0 if leaf.dtype == "bool" else raw.astype(np.dtype(leaf.dtype))
    return values.reshape(full)


def _count_steps(example: dict[str, Any], leaves: dict[str, Leaf], file: str, episode: str) -> int:
    counts: dict[str, int] = {}
    for path, leaf in leaves.items():
        if not leaf.in_steps or path not in example:
            continue
        raw = example[path]
        if leaf.kind in ("image", "text"):
            counts[path] = len(raw)
        elif leaf.static_size:
            if len(raw) % leaf.static_size:
                raise SourceError(
                    f"{len(raw)} values do not divide into steps of {leaf.shape}",
                    file=file,
                    episode=episode,
                    key=path,
                )
            counts[path] = len(raw) // leaf.static_size
    if not counts:
        return 0
    first_path, steps = next(iter(counts.items()))
    for path, count in counts.items():
        if count != steps:
            raise SourceError(
                f"has {count} steps but {first_path} has {steps} (ragged episode)",
                file=file,
                episode=episode,
                key=path,
            )
    return steps
