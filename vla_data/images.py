"""Encoding, decoding and resizing of camera frames."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image

ImageFormat = Literal["jpeg", "png"]
ResizeMode = Literal["pad", "crop", "stretch"]


def encode_image(frame: np.ndarray, fmt: ImageFormat = "jpeg", quality: int = 95) -> bytes:
    """Encode one uint8 `[H, W, 3]` frame."""
    buffer = io.BytesIO()
    image = Image.fromarray(frame)
    if fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """Decode JPEG/PNG bytes to a uint8 `[H, W, 3]` array."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def looks_complete(data: bytes) -> bool:
    """Cheap structural check of encoded bytes: a JPEG/PNG signature and its end marker.

    Catches garbage and truncated frames at conversion without decoding every image."""
    if data[:3] == b"\xff\xd8\xff":
        return b"\xff\xd9" in data[-64:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" in data[-16:]
    return False


def decode_for_size(data: bytes, height: int, width: int, mode: ResizeMode = "pad") -> np.ndarray:
    """Decode and resize in one step. JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8)
    that still covers the target, which is ~1.7x faster for 480x640 -> 224x224 than a full decode."""
    return resize(decode_draft(data, height, width, mode), height, width, mode)


def decode_draft(data: bytes, height: int, width: int, mode: ResizeMode = "pad") -> np.ndarray:
    """The decode half of `decode_for_size`: a JPEG comes out at the smallest DCT scale that still
    covers the target (its size is what `resize_geometry` must be given)."""
    with Image.open(io.BytesIO(data)) as image:
        w, h = image.size
        ratio = min(height / h, width / w) if mode == "pad" else max(height / h, width / w)
        if mode != "stretch" and ratio < 1:
            image.draft("RGB", (max(1, round(w * ratio)), max(1, round(h * ratio))))
        return np.asarray(image.convert("RGB"))


def image_format_of(data: bytes) -> ImageFormat:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    raise ValueError("bytes are neither JPEG nor PNG")


def parse_size(size: str | int | None) -> tuple[int, int] | None:
    """`224` or `"224"` -> (224, 224); `"240x320"` -> (240, 320) as (height, width)."""
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    parts = str(size).lower().split("x")
    if len(parts) == 1:
        return int(parts[0]), int(parts[0])
    if len(parts) == 2:
        return int(parts[0]), int(parts[1])
    raise ValueError(f"image size {size!r} is not N or HxW")


def resize_geometry(
    h: int, w: int, height: int, width: int, mode: ResizeMode = "pad"
) -> tuple[int, int, int, int]:
    """Where `resize` puts an `h x w` frame in its `height x width` output: the frame is scaled to
    `new_h x new_w` and its top-left corner lands at (`top`, `left`) — positive when padded, negative
    when cropped. Returns (new_h, new_w, top, left); boxes follow images through it."""
    if (h, w) == (height, width) or mode == "stretch":
        return height, width, 0, 0
    ratio = min(height / h, width / w) if mode == "pad" else max(height / h, width / w)
    new_h, new_w = max(1, round(h * ratio)), max(1, round(w * ratio))
    if mode == "pad":
        return new_h, new_w, (height - new_h) // 2, (width - new_w) // 2
    return new_h, new_w, -((new_h - height) // 2), -((new_w - width) // 2)


def resize(frame: np.ndarray, height: int, width: int, mode: ResizeMode = "pad") -> np.ndarray:
    """Resize a uint8 `[H, W, 3]` frame. `pad` keeps the aspect ratio and pads with black (openpi's
    `resize_with_pad`), `crop` keeps it and centre-crops, `stretch` ignores it."""
    h, w = frame.shape[:2]
    if (h, w) == (height, width):
        return frame
    new_h, new_w, top, left = resize_geometry(h, w, height, width, mode)
    scaled = np.asarray(Image.fromarray(frame).resize((new_w, new_h), Image.BILINEAR))
    if mode == "stretch":
        return scaled
    out = np.zeros((height, width, 3), dtype=np.uint8)
    if mode == "pad":
        out[top : top + new_h, left : left + new_w] = scaled
    else:
        out[:] = scaled[-top : -top + height, -left : -left + width]
    return out
