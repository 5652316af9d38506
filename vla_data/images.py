"""Encoding, decoding and resizing of camera frames."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image

try:  # libjpeg-turbo straight into a numpy array: PIL's pixels with less work (`vla-data bench images`)
    import simplejpeg
except ImportError:  # a declared dependency; without it PIL decodes the same pixels, slower
    simplejpeg = None

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
    """Decode JPEG/PNG bytes to a uint8 `[H, W, 3]` array.

    Baseline and progressive JPEGs go through simplejpeg (libjpeg-turbo, accurate IDCT and fancy
    upsampling: pixel-identical to PIL's decode, measured by `vla-data bench images`); what it
    refuses (corrupt data: it also raises on libjpeg's warnings), CMYK (whose conversion differs)
    and PNG go through PIL, which decodes it or raises its own error."""
    if simplejpeg is not None and data[:3] == b"\xff\xd8\xff":
        try:
            if simplejpeg.decode_jpeg_header(data)[2] in ("YCbCr", "Gray"):  # CMYK/YCCK convert otherwise
                return simplejpeg.decode_jpeg(data, "RGB")
        except ValueError:
            pass
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def looks_complete(data: bytes) -> bool:
    """Cheap structural check of encoded bytes: a JPEG/PNG signature and its end marker.

    Catches garbage and truncated frames at conversion without decoding every image."""
    if data[:3] == b"\xff\xd8\xff":
        return b"\xff\xd9" in data[-64:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" in data[-16:]
    return False


def decode_for_size(
    data: bytes, height: int, width: int, mode: ResizeMode = "pad", *, draft: bool = False
) -> np.ndarray:
    """Decode and resize in one step.

    `draft=False` (default) decodes the whole JPEG, then resizes: the same pixels as openpi's
    `resize_with_pad` applied to the full frame at inference. `draft=True` lets libjpeg decode at
    the smallest DCT scale (1/2, 1/4, 1/8) that still covers the target: much less work when the
    stored frame is 2x or more larger than the target (~1.7x faster for 480x640 -> 224x224), but the
    pixels differ slightly (mean absolute difference ~1 level) from the full decode. Frames stored at
    the training size (`convert --image-size`) are not resized, so both give the same pixels there.
    """
    if not draft or mode == "stretch":
        return resize(decode_image(data), height, width, mode)
    with Image.open(io.BytesIO(data)) as image:
        w, h = image.size
        new_h, new_w = content_size(h, w, height, width, mode)
        if (h, w) == (height, width) or new_h >= h:
            return resize(decode_image(data), height, width, mode)
        image.draft("RGB", (new_w, new_h))
        frame = np.asarray(image.convert("RGB"))
    scaled = np.asarray(Image.fromarray(frame).resize((new_w, new_h), Image.BILINEAR))
    return _place(scaled, height, width, mode)


def decode_into(data, out: np.ndarray, mode: ResizeMode = "pad", *, draft: bool = False) -> None:
    """`decode_for_size(data, h, w, mode, draft=draft)` written into `out`, a C-contiguous uint8
    `[h, w, 3]` array (a row of a batch). `data` is bytes or a uint8 array (a view of a shard). A
    JPEG stored at exactly `h x w` decodes straight into `out` (simplejpeg; no frame allocated and
    copied); anything else decodes as `decode_for_size` does, then is copied in."""
    height, width = out.shape[:2]
    if simplejpeg is not None and bytes(data[:3]) == b"\xff\xd8\xff":
        try:
            h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
            if (h, w) == (height, width) and colorspace in ("YCbCr", "Gray"):  # as decode_image
                simplejpeg.decode_jpeg(data, "RGB", buffer=out)
                return
        except ValueError:  # what simplejpeg refuses, PIL decodes or reports (decode_image)
            pass
    out[...] = decode_for_size(bytes(data), height, width, mode, draft=draft)


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


def content_size(h: int, w: int, height: int, width: int, mode: ResizeMode = "pad") -> tuple[int, int]:
    """Size `(h', w')` an `h x w` frame is scaled to before padding (`pad`) or cropping (`crop`).

    `pad` follows openpi's `resize_with_pad` exactly: `ratio = max(w / width, h / height)` and
    `int(h / ratio)` (truncation, not rounding: 240x424 -> 126x224 content rows inside 224x224)."""
    if mode == "pad":
        ratio = max(w / width, h / height)
        return max(1, int(h / ratio)), max(1, int(w / ratio))
    ratio = max(height / h, width / w)
    return max(height, round(h * ratio)), max(width, round(w * ratio))


def resize_geometry(
    h: int, w: int, height: int, width: int, mode: ResizeMode = "pad"
) -> tuple[int, int, int, int]:
    """Where `resize` / `decode_for_size` put an `h x w` frame in their `height x width` output: it
    is scaled to `new_h x new_w` and its top-left corner lands at (`top`, `left`) — positive when
    padded, negative when cropped (as `_place` does). Returns (new_h, new_w, top, left); boxes
    follow their image through it (`vla_data.tokenizers.web_text.transform_box`)."""
    if (h, w) == (height, width):
        return h, w, 0, 0
    if mode == "stretch":
        return height, width, 0, 0
    new_h, new_w = content_size(h, w, height, width, mode)
    if mode == "crop":
        return new_h, new_w, -((new_h - height) // 2), -((new_w - width) // 2)
    return new_h, new_w, (height - new_h) // 2, (width - new_w) // 2


def _place(scaled: np.ndarray, height: int, width: int, mode: ResizeMode) -> np.ndarray:
    """Pad (centred, black; openpi puts the odd row/column at the bottom/right) or centre-crop."""
    new_h, new_w = scaled.shape[:2]
    if mode == "crop":
        top, left = (new_h - height) // 2, (new_w - width) // 2
        return np.ascontiguousarray(scaled[top : top + height, left : left + width])
    out = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = scaled
    return out


def resize(frame: np.ndarray, height: int, width: int, mode: ResizeMode = "pad") -> np.ndarray:
    """Resize a uint8 `[H, W, 3]` frame with PIL bilinear. `pad` keeps the aspect ratio and pads with
    black (openpi's `resize_with_pad`, same sizes and offsets), `crop` keeps it and centre-crops,
    `stretch` ignores it."""
    h, w = frame.shape[:2]
    if (h, w) == (height, width):
        return frame
    image = Image.fromarray(frame)
    if mode == "stretch":
        return np.asarray(image.resize((width, height), Image.BILINEAR))
    new_h, new_w = content_size(h, w, height, width, mode)
    return _place(np.asarray(image.resize((new_w, new_h), Image.BILINEAR)), height, width, mode)
