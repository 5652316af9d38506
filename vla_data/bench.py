"""Benchmark harness behind `vla-data bench`. Every figure is a median over repeats, reported next
to a bound measured in the same run, because machines here are noisy."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHILD = """
import json, resource, sys, time
from vla_data.convert import ConvertOptions, convert
from vla_data.sources.hdf5 import HDF5Source
src, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
convert(HDF5Source.from_paths(src, layout="aloha"), out, ConvertOptions(workers=workers, progress=False))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds,
                  "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def read_and_encode_seconds(files: list[Path]) -> float:
    """The bound: read every array and frame with h5py and JPEG-encode each frame, one process."""
    import h5py

    from vla_data.images import encode_image

    start = time.perf_counter()
    for path in files:
        with h5py.File(path, "r") as f:
            f["action"][()]
            f["observations/qpos"][()]
            f["observations/qvel"][()]
            for cam in f["observations/images"]:
                for frame in f["observations/images"][cam][()]:
                    encode_image(frame, "jpeg", 95)
    return time.perf_counter() - start


def bench_convert(
    *,
    frames: int = 20000,
    episode_length: int = 500,
    image_size: tuple[int, int] = (96, 128),
    workers: list[int] = (1, 2),
    repeats: int = 1,
    work_dir: str | None = None,
) -> dict[str, Any]:
    """Frames/s and peak RSS of `convert hdf5` (ALOHA layout, 2 cameras) per worker count, and
    the read+encode bound of the same files."""
    from vla_data.demo import write_aloha_episode

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        raw = Path(tmp) / "raw"
        raw.mkdir()
        episodes = max(1, frames // episode_length)
        files = []
        for i in range(episodes):
            files.append(raw / f"episode_{i}.hdf5")
            write_aloha_episode(
                files[-1], seed=i, steps=episode_length, height=image_size[0], width=image_size[1]
            )
        total = episodes * episode_length
        bound = statistics.median(read_and_encode_seconds(files) for _ in range(repeats))
        runs = {}
        for n in workers:
            results = []
            for r in range(repeats):
                out = Path(tmp) / f"out_{n}_{r}"
                proc = subprocess.run(
                    [sys.executable, "-c", CHILD, str(raw), str(out), str(n)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode != 0:
                    raise RuntimeError(f"conversion failed: {proc.stderr.strip()[-2000:]}")
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            seconds = statistics.median(r["seconds"] for r in results)
            runs[str(n)] = {
                "seconds": seconds,
                "frames_per_s": total / seconds,
                "ratio_to_bound": (total / seconds) / (total / bound),
                "peak_rss_main_mb": max(r["rss_main_mb"] for r in results),
                "peak_rss_worker_mb": max(r["rss_worker_mb"] for r in results),
            }
        return {
            "frames": total,
            "episodes": episodes,
            "cameras": 2,
            "image_size": list(image_size),
            "repeats": repeats,
            "bound_read_encode": {"seconds": bound, "frames_per_s": total / bound},
            "convert": runs,
        }


def format_convert_table(result: dict[str, Any]) -> str:
    h, w = result["image_size"]
    lines = [
        f"{result['frames']} frames, {result['episodes']} episodes, 2 cameras {h}x{w}, median of {result['repeats']}",
        f"{'run':<28} {'frames/s':>10} {'x bound':>8} {'peak RSS main':>14} {'worker':>8}",
        f"{'read + JPEG encode (bound)':<28} {result['bound_read_encode']['frames_per_s']:>10.0f} {1.0:>8.2f}",
    ]
    for n, run in result["convert"].items():
        lines.append(
            f"{'convert --workers ' + n:<28} {run['frames_per_s']:>10.0f} {run['ratio_to_bound']:>8.2f} "
            f"{run['peak_rss_main_mb']:>11.0f} MB {run['peak_rss_worker_mb']:>5.0f} MB"
        )
    return "\n".join(lines)
