"""JPEG decoders on the same frames: time per frame and pixel difference from the reference decode.

The reference is PIL's full decode (libjpeg-turbo, accurate integer IDCT, fancy upsampling) then
`resize` to the model size: the pixels openpi's `resize_with_pad` sees. Optional decoders that
are not installed (or do not import) are reported as skipped with the reason.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from vla_data.bench.timing import median_seconds


def _frames(count: int, height: int, width: int, seed: int = 0) -> list[bytes]:
    """Camera-like JPEGs (quality 95, as `convert` writes): the demo scene plus sensor noise."""
    from vla_data.images import encode_image
    from vla_data.samples import render_frames

    rng = np.random.default_rng(seed)
    positions = rng.uniform(-1, 1, (count, 2))
    frames = render_frames(positions, height, width, (230, 60, 40)).astype(np.int16)
    frames += rng.normal(0, 6, frames.shape).astype(np.int16)
    return [encode_image(f.clip(0, 255).astype(np.uint8), "jpeg", 95) for f in frames]


def _decoders(height: int, width: int) -> tuple[dict[str, Callable[[bytes], np.ndarray]], dict[str, str]]:
    """name -> bytes -> uint8 [h, w, 3] at the model size, and name -> why it was skipped."""
    from PIL import Image

    from vla_data.images import decode_for_size, resize

    def pil_full(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            return resize(np.asarray(image.convert("RGB")), height, width)

    decoders: dict[str, Callable[[bytes], np.ndarray]] = {
        "PIL full (reference)": pil_full,
        "PIL draft (DCT-scaled)": lambda data: decode_for_size(data, height, width, draft=True),
        "vla_data decode_for_size": lambda data: decode_for_size(data, height, width),
    }
    skipped: dict[str, str] = {}
    try:
        import simplejpeg

        decoders["simplejpeg"] = lambda data: resize(simplejpeg.decode_jpeg(data, "RGB"), height, width)
    except ImportError as e:
        skipped["simplejpeg"] = f"not installed ({e})"
    try:
        from turbojpeg import TJPF_RGB, TurboJPEG

        turbo = TurboJPEG()
        decoders["PyTurboJPEG"] = lambda data: resize(
            turbo.decode(data, pixel_format=TJPF_RGB), height, width
        )
    except (ImportError, OSError, RuntimeError) as e:
        skipped["PyTurboJPEG"] = f"unavailable ({e})"
    try:
        import torch
        from torchvision.io import decode_jpeg

        def torchvision_decode(data: bytes) -> np.ndarray:
            tensor = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
            return resize(tensor.permute(1, 2, 0).numpy(), height, width)

        decoders["torchvision.io.decode_jpeg"] = torchvision_decode
    except Exception as e:  # a torchvision built for another torch fails at import with RuntimeError
        skipped["torchvision.io.decode_jpeg"] = f"does not import beside torch here ({type(e).__name__}: {e})"
    return decoders, skipped


def bench_images(
    *, sizes: tuple[tuple[int, int], ...] = ((224, 224), (480, 640)), frames: int = 64, repeats: int = 5
) -> dict[str, Any]:
    """Per stored size: ms per frame of each decoder (decode + resize to 224x224) and its pixel
    difference (max and mean absolute) from the reference on the same frames."""
    rows = []
    skipped: dict[str, str] = {}
    for h, w in sizes:
        data = _frames(frames, h, w)
        decoders, skipped = _decoders(224, 224)
        reference = [decoders["PIL full (reference)"](d) for d in data]
        for name, decode in decoders.items():
            out = [decode(d) for d in data]
            diff = np.stack([np.abs(a.astype(np.int16) - b) for a, b in zip(out, reference, strict=True)])
            seconds = median_seconds(lambda decode=decode, data=data: [decode(d) for d in data], repeats)
            rows.append(
                {
                    "stored": f"{h}x{w}",
                    "decoder": name,
                    "ms_per_frame": seconds / len(data) * 1e3,
                    "max_abs_diff": int(diff.max()),
                    "mean_abs_diff": float(diff.mean()),
                }
            )
    return {"frames": frames, "repeats": repeats, "model_size": [224, 224], "rows": rows, "skipped": skipped}


def format_images_table(result: dict[str, Any]) -> str:
    lines = [
        f"JPEG decode + resize to 224x224, {result['frames']} frames, median of {result['repeats']}",
        f"{'stored':<9}{'decoder':<28}{'ms/frame':>9}{'x PIL full':>11}{'max diff':>10}{'mean diff':>11}",
    ]
    reference = {
        r["stored"]: r["ms_per_frame"] for r in result["rows"] if r["decoder"] == "PIL full (reference)"
    }
    for r in result["rows"]:
        lines.append(
            f"{r['stored']:<9}{r['decoder']:<28}{r['ms_per_frame']:>9.3f}{reference[r['stored']] / r['ms_per_frame']:>11.2f}"
            f"{r['max_abs_diff']:>10}{r['mean_abs_diff']:>11.3f}"
        )
    for name, reason in result["skipped"].items():
        lines.append(f"skipped {name}: {reason}")
    return "\n".join(lines)
