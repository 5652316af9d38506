"""Conversion benchmarks: HDF5 (per executor and worker count), RLDS and LeRobot video."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vla_data.bench.timing import median_seconds

CHILD = """
import json, resource, sys, time
from vla_data.convert import ConvertOptions, convert
from vla_data.sources.hdf5 import HDF5Source
src, out, workers, executor = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
start = time.perf_counter()
options = ConvertOptions(workers=workers, executor=executor, unit_episodes=5, progress=False)
convert(HDF5Source.from_paths(src, layout="aloha"), out, options)
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
    executors: list[str] = ("stream",),
    repeats: int = 1,
    work_dir: str | None = None,
) -> dict[str, Any]:
    """Frames/s and peak RSS of `convert hdf5` (ALOHA layout, 2 cameras) per executor and worker
    count, and the read+encode bound of the same files."""
    from vla_data.samples import write_aloha_episode

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
        for executor, n in [(e, n) for e in executors for n in workers]:
            results = []
            for r in range(repeats):
                out = Path(tmp) / f"out_{executor}_{n}_{r}"
                proc = subprocess.run(
                    [sys.executable, "-c", CHILD, str(raw), str(out), str(n), executor],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode != 0:
                    raise RuntimeError(f"conversion failed: {proc.stderr.strip()[-2000:]}")
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            seconds = statistics.median(r["seconds"] for r in results)
            runs[f"{executor} --workers {n}"] = {
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
            f"{'convert ' + n:<28} {run['frames_per_s']:>10.0f} {run['ratio_to_bound']:>8.2f} "
            f"{run['peak_rss_main_mb']:>11.0f} MB {run['peak_rss_worker_mb']:>5.0f} MB"
        )
    return "\n".join(lines)


def bench_convert_rlds(
    *,
    episodes: int = 200,
    steps: int = 100,
    image_size: tuple[int, int] = (128, 128),
    repeats: int = 3,
    work_dir: str | None = None,
) -> dict[str, Any]:
    """Episodes/s and MB/s of `convert rlds`, next to reading the same files with CRC checks only."""
    from vla_data.convert import ConvertOptions, convert
    from vla_data.samples import write_rlds_sample
    from vla_data.sources.rlds import RLDSSource
    from vla_data.sources.tfrecord import iter_records

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        root = Path(tmp) / "rlds"
        write_rlds_sample(root, episodes=episodes, steps=steps, image_size=image_size)
        files = sorted(root.glob("*.tfrecord-*"))
        megabytes = sum(f.stat().st_size for f in files) / 1e6

        def read_crc():
            for f in files:
                for _ in iter_records(str(f)):
                    pass

        bound = median_seconds(read_crc, repeats)
        runs = []
        for r in range(repeats):
            out = Path(tmp) / f"out{r}"
            start = time.perf_counter()
            convert(RLDSSource.from_path(root), out, ConvertOptions(progress=False))
            runs.append(time.perf_counter() - start)
        seconds = statistics.median(runs)
        return {
            "episodes": episodes,
            "steps": steps,
            "image_size": list(image_size),
            "megabytes": megabytes,
            "repeats": repeats,
            "bound_read_crc": {
                "seconds": bound,
                "episodes_per_s": episodes / bound,
                "mb_per_s": megabytes / bound,
            },
            "convert": {
                "seconds": seconds,
                "episodes_per_s": episodes / seconds,
                "mb_per_s": megabytes / seconds,
                "ratio_to_bound": bound / seconds,
            },
        }


def bench_convert_lerobot(
    *,
    episodes: int = 20,
    steps: int = 300,
    image_size: tuple[int, int] = (240, 320),
    workers: list[int] = (1, 2),
    repeats: int = 3,
    work_dir: str | None = None,
) -> dict[str, Any]:
    """Frames/s of `convert lerobot` on a generated H.264 video dataset, next to decoding the same
    videos to RGB arrays with PyAV (the bound: conversion must at least decode every frame)."""
    import av

    from vla_data.convert import ConvertOptions, convert
    from vla_data.samples import write_lerobot_video_sample
    from vla_data.sources.lerobot import LeRobotSource

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        root = Path(tmp) / "lerobot"
        write_lerobot_video_sample(
            root, episodes=episodes, steps=steps, height=image_size[0], width=image_size[1], fps=30
        )
        videos = sorted(root.glob("videos/**/*.mp4"))
        frames = episodes * steps

        def decode_only():
            for path in videos:
                with av.open(str(path)) as container:
                    stream = container.streams.video[0]
                    stream.thread_type = "AUTO"
                    for frame in container.decode(stream):
                        frame.to_ndarray(format="rgb24")

        bound = median_seconds(decode_only, repeats)
        runs = {}
        for n in workers:
            times = []
            for r in range(repeats):
                out = Path(tmp) / f"out_{n}_{r}"
                start = time.perf_counter()
                convert(LeRobotSource.from_path(root), out, ConvertOptions(workers=n, progress=False))
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            runs[str(n)] = {
                "seconds": seconds,
                "frames_per_s": frames / seconds,
                "ratio_to_bound": bound / seconds,
            }
        return {
            "episodes": episodes,
            "frames": frames,
            "image_size": list(image_size),
            "codec": "h264",
            "repeats": repeats,
            "bound_decode_only": {"seconds": bound, "frames_per_s": frames / bound},
            "convert": runs,
        }


def format_lerobot_table(result: dict[str, Any]) -> str:
    h, w = result["image_size"]
    lines = [
        f"LeRobot v2.1 video: {result['frames']} frames in {result['episodes']} episodes, H.264 {h}x{w}, median of {result['repeats']}",
        f"{'run':<30}{'frames/s':>10}{'x bound':>9}",
        f"{'PyAV decode only (bound)':<30}{result['bound_decode_only']['frames_per_s']:>10.0f}{1.0:>9.2f}",
    ]
    for n, run in result["convert"].items():
        lines.append(
            f"{'convert lerobot --workers ' + n:<30}{run['frames_per_s']:>10.0f}{run['ratio_to_bound']:>9.2f}"
        )
    return "\n".join(lines)


def format_rlds_table(result: dict[str, Any]) -> str:
    b, c = result["bound_read_crc"], result["convert"]
    h, w = result["image_size"]
    return "\n".join(
        [
            f"RLDS: {result['episodes']} episodes x {result['steps']} steps, 2 JPEG cameras {h}x{w}, {result['megabytes']:.0f} MB, median of {result['repeats']}",
            f"{'run':<30}{'episodes/s':>12}{'MB/s':>9}{'x bound':>9}",
            f"{'read + CRC only (bound)':<30}{b['episodes_per_s']:>12.0f}{b['mb_per_s']:>9.0f}{1.0:>9.2f}",
            f"{'convert rlds':<30}{c['episodes_per_s']:>12.0f}{c['mb_per_s']:>9.0f}{c['ratio_to_bound']:>9.2f}",
        ]
    )
