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
    with Image.open(io.BytesIO(data)) as image:
        w, h = image.size
        ratio = min(height / h, width / w) if mode == "pad" else max(height / h, width / w)
        if mode != "stretch" and ratio < 1:
            image.draft("RGB", (max(1, round(w * ratio)), max(1, round(h * ratio))))
        frame = np.asarray(image.convert("RGB"))
    return resize(frame, height, width, mode)


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


def resize(frame: np.ndarray, height: int, width: int, mode: ResizeMode = "pad") -> np.ndarray:
    """Resize a uint8 `[H, W, 3]` frame. `pad` keeps the aspect ratio and pads with black (openpi's
    `resize_with_pad`), `crop` keeps it and centre-crops, `stretch` ignores it."""
    h, w = frame.shape[:2]
    if (h, w) == (height, width):
        return frame
    image = Image.fromarray(frame)
    if mode == "stretch":
        return np.asarray(image.resize((width, height), Image.BILINEAR))
    ratio = min(height / h, width / w) if mode == "pad" else max(height / h, width / w)
    new_h, new_w = max(1, round(h * ratio)), max(1, round(w * ratio))
    scaled = np.asarray(image.resize((new_w, new_h), Image.BILINEAR))
    out = np.zeros((height, width, 3), dtype=np.uint8)
    if mode == "pad":
        top, left = (height - new_h) // 2, (width - new_w) // 2
        out[top : top + new_h, left : left + new_w] = scaled
    else:
        top, left = (new_h - height) // 2, (new_w - width) // 2
        out[:] = scaled[top : top + height, left : left + width]
    return out
