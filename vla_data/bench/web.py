"""`bench convert --format web`: samples/s and peak RSS of `convert web` at two dataset sizes, next
to reading + copying the same image bytes alone (the bound), each in its own process."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

CONVERT = """
import json, resource, sys, time
from vla_data.convert import ConvertOptions, convert
from vla_data.sources.web import WebSource
start = time.perf_counter()
convert(WebSource(sys.argv[1]), sys.argv[2], ConvertOptions(progress=False))
print(json.dumps({"seconds": time.perf_counter() - start,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

# The bound: the same image bytes read from the same files (tar members or image files, in the
# same order) and written once to one output file, nothing else.
READ_COPY = """
import json, resource, sys, tarfile, time
from pathlib import Path
src, out = Path(sys.argv[1]), open(sys.argv[2], "wb")
start = time.perf_counter()
if src.is_dir():
    for tar_path in sorted(src.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            while (member := tar.next()) is not None:
                tar.members.clear()
                if member.name.endswith(".jpg"):
                    out.write(tar.extractfile(member).read())
else:
    for line in open(src, "rb"):
        out.write((src.parent / json.loads(line)["image"]).read_bytes())
out.close()
print(json.dumps({"seconds": time.perf_counter() - start,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _images(count: int, size: tuple[int, int], seed: int = 0) -> list[bytes]:
    """Distinct JPEGs of smooth noise (a few KB each, like small web photos)."""
    from vla_data.images import encode_image

    rng = np.random.default_rng(seed)
    h, w = size
    out = []
    for _ in range(count):
        coarse = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
        out.append(encode_image(np.kron(coarse, np.ones((8, 8, 1), np.uint8)), "jpeg", 90))
    return out


def write_web_bench_data(folder: Path, fmt: str, samples: int, size: tuple[int, int]) -> Path:
    """`samples` web samples in `fmt`: `wds` (img2dataset-style tars of 10,000 samples) or `llava`
    (LLaVA JSON Lines + one image file per sample)."""
    images = _images(64, size)
    folder.mkdir(parents=True)
    if fmt == "wds":
        for shard in range(-(-samples // 10_000)):
            import io
            import tarfile

            with tarfile.open(folder / f"{shard:05d}.tar", "w") as tar:
                for i in range(shard * 10_000, min(samples, (shard + 1) * 10_000)):
                    for ext, data in (("jpg", images[i % 64]), ("txt", f"caption {i}".encode())):
                        info = tarfile.TarInfo(f"{i:08d}.{ext}")
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
        return folder
    (folder / "images").mkdir()
    with open(folder / "llava.jsonl", "w") as f:
        for i in range(samples):
            (folder / "images" / f"{i:08d}.jpg").write_bytes(images[i % 64])
            turns = [
                {"from": "human", "value": f"<image>\nWhat is {i}?"},
                {"from": "gpt", "value": f"It is {i}."},
            ]
            f.write(json.dumps({"id": str(i), "image": f"images/{i:08d}.jpg", "conversations": turns}) + "\n")
    return folder / "llava.jsonl"


def _run(script: str, *args: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_convert_web(
    *,
    sizes: tuple[int, ...] = (10_000, 40_000),
    formats: tuple[str, ...] = ("wds", "llava"),
    image_size: tuple[int, int] = (96, 128),
    repeats: int = 1,
    work_dir: str | None = None,
) -> dict[str, Any]:
    """Per format and dataset size: samples/s and peak RSS of `convert web` and of read + copy of
    the same image bytes (medians over `repeats`), and the largest/smallest size RSS ratio."""
    rows = []
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for fmt in formats:
            for n in sizes:
                src = write_web_bench_data(Path(tmp) / f"{fmt}_{n}", fmt, n, image_size)
                image_mb = sum(len(b) for b in _images(64, image_size)) / 64 * n / 1e6
                bound, conv = [], []
                for r in range(repeats):
                    bound.append(_run(READ_COPY, str(src), str(Path(tmp) / f"copy_{fmt}_{n}_{r}")))
                    conv.append(_run(CONVERT, str(src), str(Path(tmp) / f"out_{fmt}_{n}_{r}")))
                    (Path(tmp) / f"copy_{fmt}_{n}_{r}").unlink()
                b, c = (statistics.median(x["seconds"] for x in runs) for runs in (bound, conv))
                rows.append(
                    {
                        "format": fmt,
                        "samples": n,
                        "image_mb": image_mb,
                        "bound_samples_per_s": n / b,
                        "bound_rss_mb": max(x["rss_mb"] for x in bound),
                        "convert_samples_per_s": n / c,
                        "convert_rss_mb": max(x["rss_mb"] for x in conv),
                        "ratio_to_bound": b / c,
                    }
                )
    growth = {}
    for fmt in formats:
        mine = [r for r in rows if r["format"] == fmt]
        growth[fmt] = {
            "rss": mine[-1]["convert_rss_mb"] / mine[0]["convert_rss_mb"],
            "time_per_sample": mine[0]["convert_samples_per_s"] / mine[-1]["convert_samples_per_s"],
        }
    return {"image_size": list(image_size), "repeats": repeats, "runs": rows, "largest_over_smallest": growth}


def format_web_table(result: dict[str, Any]) -> str:
    h, w = result["image_size"]
    lines = [
        f"convert web: generated samples, one {h}x{w} JPEG each, median of {result['repeats']}",
        f"{'format':<7} {'samples':>8} {'images':>8}  {'read+copy/s':>11} {'RSS':>7}  "
        f"{'convert/s':>10} {'RSS':>7} {'x bound':>8}",
    ]
    for r in result["runs"]:
        lines.append(
            f"{r['format']:<7} {r['samples']:>8} {r['image_mb']:>6.0f}MB  {r['bound_samples_per_s']:>11.0f} "
            f"{r['bound_rss_mb']:>4.0f} MB  {r['convert_samples_per_s']:>10.0f} {r['convert_rss_mb']:>4.0f} MB "
            f"{r['ratio_to_bound']:>8.2f}"
        )
    for fmt, g in result["largest_over_smallest"].items():
        lines.append(
            f"{fmt}: largest/smallest size: peak RSS x{g['rss']:.2f}, time per sample x{g['time_per_sample']:.2f}"
        )
    return "\n".join(lines)
