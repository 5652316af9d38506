"""One web vision-language sample, as read from a source and as stored in shards.

A sample keeps its structure: turns (role + text, in order), zero or more images (encoded bytes,
copied unchanged when JPEG/PNG, other formats re-encoded once as PNG) and boxes as numbers —
pixel corners in the sample's own image, the image's size, a label — never pre-rendered text.
Prompt templates and `<loc>` tokens are applied at load time (`vla_data.tokenizers.web_text`).

Stored columns (one row per sample; "episodes" are groups of samples that only keep the shard
index small): `sample_id`, `kind` (caption | vqa | detection | chat), `turn_roles`, `turn_texts`,
`images` (list of encoded bytes), `image_sizes` (list of [height, width]), `boxes` (list of
[x_min, y_min, x_max, y_max] pixels), `box_labels`, `box_image` (index of each box's image).

Read one back with `read_web_sample(ShardDataset(root), index)`.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vla_data.episode import Episode
from vla_data.errors import SourceError, VlaDataError
from vla_data.images import decode_image, encode_image, looks_complete

KINDS = ("caption", "vqa", "detection", "chat")
ROLES = ("system", "user", "assistant")
ROLE_ALIASES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "system": "system",
}
COLUMNS = {
    "turn_roles": pa.list_(pa.string()),
    "turn_texts": pa.list_(pa.string()),
    "images": pa.list_(pa.binary()),
    "image_sizes": pa.list_(pa.list_(pa.int32(), 2)),
    "boxes": pa.list_(pa.list_(pa.float32(), 4)),
    "box_labels": pa.list_(pa.string()),
    "box_image": pa.list_(pa.int32()),
}
WEB_FEATURES = ("sample_id", "kind", *COLUMNS)


@dataclass
class WebSample:
    """One sample. `boxes` are `[x_min, y_min, x_max, y_max]` in pixels of `images[box_image[i]]`,
    whose size is `image_sizes[i]` = (height, width)."""

    id: str
    kind: str
    turns: list[tuple[str, str]] = field(default_factory=list)  # (role, text)
    images: list[bytes] = field(default_factory=list)
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    box_labels: list[str] = field(default_factory=list)
    box_image: list[int] = field(default_factory=list)

    def check(self) -> WebSample:
        """Raise `ValueError` describing the first structural problem; return self when sound."""
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {KINDS}")
        roles = [r for r, _ in self.turns]
        if bad := [r for r in roles if r not in ROLES]:
            raise ValueError(f"turn role {bad[0]!r} is not one of {ROLES}")
        talk = [r for r in roles if r != "system"]
        if self.kind != "detection":
            if not talk or talk[0] != "user" or "assistant" not in talk:
                raise ValueError(f"turns must start with a user turn and hold an assistant turn, got {roles}")
            if talk[-1] != "assistant":
                raise ValueError(f"the last turn is a user turn without an answer ({roles})")
        elif not self.boxes:
            raise ValueError("a detection sample has no box")
        if len(self.image_sizes) != len(self.images):
            raise ValueError("image_sizes and images differ in length")
        if not len(self.boxes) == len(self.box_labels) == len(self.box_image):
            raise ValueError("boxes, box_labels and box_image differ in length")
        for box, image in zip(self.boxes, self.box_image, strict=True):
            x0, y0, x1, y1 = box
            if not 0 <= image < len(self.images):
                raise ValueError(
                    f"box {list(box)} refers to image {image}; the sample has {len(self.images)}"
                )
            h, w = self.image_sizes[image]
            if not (np.isfinite(box).all() and 0 <= x0 < x1 <= w + 0.5 and 0 <= y0 < y1 <= h + 0.5):
                raise ValueError(f"box {list(box)} is empty or outside its {w}x{h} image")
        return self

    @property
    def user_text(self) -> str:
        """The first user turn (a caption/VQA prompt)."""
        return next((t for r, t in self.turns if r == "user"), "")


def image_bytes(value: Any, root: Path | None) -> bytes:
    """Encoded image bytes from bytes, `{bytes, path}`, a path (relative to `root`) or a PIL image.
    JPEG/PNG bytes are returned unchanged; anything else is decoded and re-encoded once as PNG."""
    if isinstance(value, dict):
        data = value.get("bytes")
        value = data if data is not None else value.get("path")
    if isinstance(value, str):
        path = Path(value) if root is None else root / value
        if not path.is_file():
            raise ValueError(f"image file {path} is missing")
        value = path.read_bytes()
    if hasattr(value, "save"):  # a PIL image
        buffer = io.BytesIO()
        value.convert("RGB").save(buffer, format="PNG")
        value = buffer.getvalue()
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ValueError(f"unsupported image value {type(value).__name__}")
    value = bytes(value)
    if looks_complete(value):
        return value
    try:
        return encode_image(decode_image(value), "png")
    except Exception as e:  # PIL raises several types for corrupt data
        raise ValueError(f"image bytes cannot be decoded ({e})") from e


def image_size(data: bytes) -> tuple[int, int]:
    """(height, width) from the image header, without decoding the pixels (JPEG and PNG parsed
    here — PIL's open costs ~80 us per image; other formats never reach storage)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return height, width
    if data[:2] == b"\xff\xd8":
        position = 2
        while position + 9 <= len(data):
            if data[position] != 0xFF:
                break
            marker = data[position + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                position += 1 if marker == 0xFF else 2
                continue
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
                height, width = struct.unpack(">HH", data[position + 5 : position + 9])
                return height, width
            position += 2 + struct.unpack(">H", data[position + 2 : position + 4])[0]
    raise ValueError("image header cannot be read (no JPEG frame or PNG IHDR found)")


def with_images(sample: WebSample, values: list[Any], root: Path | None) -> WebSample:
    """`sample` holding the encoded bytes and sizes of `values` (see `image_bytes`)."""
    sample.images = [image_bytes(v, root) for v in values]
    sample.image_sizes = [image_size(b) for b in sample.images]
    return sample


def group_episode(samples: list[WebSample], source_ref: dict[str, Any], skipped: list[dict]) -> Episode:
    """One "episode" of web samples: a row per sample, list columns as Arrow arrays."""
    if not samples:
        reasons = "; ".join(s["reason"] for s in skipped[:3])
        raise SourceError(f"no readable sample in this group ({reasons})", file=source_ref.get("file", "?"))
    columns = {
        "turn_roles": [[r for r, _ in s.turns] for s in samples],
        "turn_texts": [[t for _, t in s.turns] for s in samples],
        "images": [s.images for s in samples],
        "image_sizes": [[list(hw) for hw in s.image_sizes] for s in samples],
        "boxes": [[list(map(float, b)) for b in s.boxes] for s in samples],
        "box_labels": [s.box_labels for s in samples],
        "box_image": [s.box_image for s in samples],
    }
    arrays: dict[str, Any] = {
        "sample_id": np.array([s.id for s in samples], dtype=object),
        "kind": np.array([s.kind for s in samples], dtype=object),
    }
    arrays.update({name: pa.array(values, type=COLUMNS[name]) for name, values in columns.items()})
    episode = Episode(
        index=0, task="", fps=1.0, arrays=arrays, source_ref=source_ref, skipped_samples=list(skipped)
    )
    episode.validate(require_action=False)
    return episode


def read_web_sample(dataset, index: int) -> WebSample:
    """Sample `index` of a converted web dataset (a `ShardDataset`): turns, images, boxes.

    >>> sample = read_web_sample(ShardDataset("web_out"), 0)
    >>> sample.turns, len(sample.images), sample.boxes, sample.box_labels
    """
    missing = [name for name in WEB_FEATURES if name not in dataset.features]
    if missing:
        raise VlaDataError(
            f"{dataset.root}: not a web dataset of this version (missing {missing}); convert it again "
            "with `vla-data convert web`"
        )
    episode, row = dataset.locate(index)
    return web_sample_from_table(dataset.rows(episode, row, row + 1, list(WEB_FEATURES)), 0)


def web_sample_from_table(table: pa.Table, row: int) -> WebSample:
    """The sample at `row` of a web dataset's episode table (see `read_web_sample`)."""
    values = table.slice(row, 1).select(list(WEB_FEATURES)).to_pylist()[0]
    return WebSample(
        id=values["sample_id"],
        kind=values["kind"],
        turns=list(zip(values["turn_roles"], values["turn_texts"], strict=True)),
        images=values["images"],
        image_sizes=[tuple(hw) for hw in values["image_sizes"]],
        boxes=[tuple(b) for b in values["boxes"]],
        box_labels=values["box_labels"],
        box_image=values["box_image"],
    )
