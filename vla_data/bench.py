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

        bound = _median_seconds(read_crc, repeats)
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

        bound = _median_seconds(decode_only, repeats)
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


def smooth_chunks(n: int, horizon: int, dim: int, seed: int = 0):
    """Normalized-looking synthetic chunks `[n, horizon, dim]`: sums of slow sinusoids in [-1, 1]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, horizon)[None, :, None]
    out = np.zeros((n, horizon, dim))
    for _ in range(3):
        freq = rng.uniform(0.1, 1.5, (n, 1, dim))
        out += rng.uniform(0.1, 0.3, (n, 1, dim)) * np.sin(
            2 * np.pi * (freq * t + rng.uniform(0, 1, (n, 1, dim)))
        )
    return out + rng.normal(0, 0.01, out.shape)


def _median_seconds(func, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_tokenizer(
    *,
    shapes: list[tuple[int, int]] = ((10, 7), (30, 26), (50, 14)),
    chunks: int = 2000,
    fit_chunks: int = 100_000,
    mode: str = "default",
    repeats: int = 5,
) -> dict[str, Any]:
    """Batched encode/decode against the reference's per-chunk loop, the BPE share, and fit time."""
    import numpy as np
    from scipy.fft import dct, idct

    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.fast import _strings

    rows = []
    for horizon, dim in shapes:
        data = smooth_chunks(chunks, horizon, dim)
        fast = FastTokenizer.fit(data, mode=mode)
        ids = fast.encode(data)

        def loop_encode(fast=fast, data=data):
            for chunk in data:
                coefficients = np.around(dct(chunk, axis=0, norm="ortho") * fast.scale)
                text = "".join(map(chr, np.maximum(coefficients.flatten() - fast.min_token, 0).astype(int)))
                fast.bpe.encode(text)

        def loop_decode(fast=fast, ids=ids, horizon=horizon, dim=dim):
            for seq in ids:
                codes = np.array(list(map(ord, fast.bpe.decode(seq)))) + fast.min_token
                idct(codes.reshape(horizon, dim) / fast.scale, axis=0, norm="ortho")

        strings = _strings(fast.symbols(data))
        batch_encode = _median_seconds(lambda fast=fast, data=data: fast.encode(data), repeats)
        bpe_only = _median_seconds(lambda fast=fast, strings=strings: fast.bpe.encode_batch(strings), repeats)
        batch_decode = _median_seconds(
            lambda fast=fast, ids=ids, h=horizon, d=dim: fast.decode(ids, horizon=h, action_dim=d), repeats
        )
        rows.append(
            {
                "shape": f"{horizon}x{dim}",
                "tokens_per_chunk": float(np.mean([len(x) for x in ids])),
                "encode_batched_per_s": chunks / batch_encode,
                "encode_loop_per_s": chunks / _median_seconds(loop_encode, repeats),
                "decode_batched_per_s": chunks / batch_decode,
                "decode_loop_per_s": chunks / _median_seconds(loop_decode, repeats),
                "bpe_share_of_encode": bpe_only / batch_encode,
            }
        )
        rows[-1]["encode_speedup"] = rows[-1]["encode_batched_per_s"] / rows[-1]["encode_loop_per_s"]
        rows[-1]["decode_speedup"] = rows[-1]["decode_batched_per_s"] / rows[-1]["decode_loop_per_s"]
    fit_data = smooth_chunks(fit_chunks, 10, 7, seed=1)
    start = time.perf_counter()
    FastTokenizer.fit(fit_data, mode=mode)
    fit_seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "chunks": chunks,
        "repeats": repeats,
        "rows": rows,
        "fit": {"chunks": fit_chunks, "shape": "10x7", "seconds": fit_seconds},
    }


def format_tokenizer_table(result: dict[str, Any]) -> str:
    lines = [
        f"FAST ({result['mode']} mode), {result['chunks']} chunks per shape, median of {result['repeats']}; chunks/s",
        f"{'shape':<7}{'tokens':>7}{'encode batched':>16}{'loop':>9}{'x':>6}{'decode batched':>16}{'loop':>9}{'x':>6}{'BPE share':>11}",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['shape']:<7}{r['tokens_per_chunk']:>7.1f}{r['encode_batched_per_s']:>16.0f}{r['encode_loop_per_s']:>9.0f}"
            f"{r['encode_speedup']:>6.1f}{r['decode_batched_per_s']:>16.0f}{r['decode_loop_per_s']:>9.0f}"
            f"{r['decode_speedup']:>6.1f}{r['bpe_share_of_encode']:>10.0%}"
        )
    fit = result["fit"]
    lines.append(f"fit on {fit['chunks']} chunks of {fit['shape']}: {fit['seconds']:.1f} s")
    return "\n".join(lines)


def _children_rss_mb() -> list[float]:
    """Resident memory of this process's child processes (DataLoader workers), from /proc."""
    import os

    pids = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
                pids += f.read().split()
        except OSError:
            continue
    sizes = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = next(line for line in f if line.startswith("VmRSS:"))
            sizes.append(int(rss.split()[1]) / 1024)
        except (OSError, StopIteration):
            continue
    return sizes


def bench_loader(
    *,
    batch_size: int = 32,
    horizon: int = 50,
    batches: int = 150,
    rss_batches: int = 1000,
    workers: list[int] = (0, 1, 2),
    image_size: tuple[int, int] = (240, 320),
    work_dir: str | None = None,
) -> dict[str, Any]:
    """Loader samples/s for batch 32, 2 cameras, H=50 per worker count, the decode+resize bound of
    the same images, and worker RSS across `rss_batches` batches."""
    import gc

    import numpy as np

    from vla_data.convert import ConvertOptions, convert
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.loader.fast_cache import build_fast_cache
    from vla_data.loader.robot import load_image
    from vla_data.samples import write_aloha_sample
    from vla_data.shards import ShardDataset
    from vla_data.sources.hdf5 import HDF5Source
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        root = Path(tmp)
        write_aloha_sample(root / "raw", episodes=10, steps=300, height=image_size[0], width=image_size[1])
        convert(
            HDF5Source.from_paths(root / "raw", layout="aloha", task="pick up the cube"),
            root / "robot",
            ConvertOptions(workers=2),
        )
        chunks = sample_chunks([root / "robot"], ChunkSpec(horizon=horizon))
        FastTokenizer.fit(chunks.values).save_pretrained(root / "fast")
        config = LoaderConfig(
            sources=(SourceConfig("robot", (str(root / "robot"),)),),
            fast_tokenizer=str(root / "fast"),
            fast_mapping="append",
            batch_size=batch_size,
            horizon=horizon,
            max_tokens=512,
            samples_per_epoch=batch_size * max(batches, rss_batches),
        )
        loader = make_loader(config)
        build_fast_cache(loader.sources[0], 0)

        ds = ShardDataset(root / "robot")
        rng = np.random.default_rng(0)
        picks = rng.integers(0, len(ds), batch_size * 20)
        frames = [ds.step(int(i)) for i in picks]

        def decode_resize():
            for step in frames:
                for cam in ("observation.images.cam_high", "observation.images.cam_left_wrist"):
                    load_image(step[cam], (224, 224))

        bound = _median_seconds(decode_resize, 3) / len(frames)  # seconds per sample
        runs = {}
        for n in workers:
            loader = make_loader(LoaderConfig(**{**vars(config), "num_workers": n}))
            iterator = iter(loader)
            next(iterator)  # start workers and warm caches
            start = time.perf_counter()
            for _ in range(batches):
                next(iterator)
            seconds = time.perf_counter() - start
            del iterator, loader  # shuts its workers down before the next measurement
            gc.collect()
            runs[str(n)] = {
                "samples_per_s": batches * batch_size / seconds,
                "batches_per_s": batches / seconds,
                "ratio_to_bound": (batches * batch_size / seconds) * bound,
            }
        loader = make_loader(LoaderConfig(**{**vars(config), "num_workers": 2}))
        rss = {}
        for index, _ in enumerate(loader, 1):
            if index in (100, rss_batches):
                rss[str(index)] = _children_rss_mb()
            if index == rss_batches:
                break
        return {
            "batch_size": batch_size,
            "horizon": horizon,
            "cameras": 2,
            "stored_image_size": list(image_size),
            "model_image_size": [224, 224],
            "batches": batches,
            "bound_decode_resize": {"samples_per_s": 1 / bound},
            "loader": runs,
            "worker_rss_mb": rss,
        }


def format_loader_table(result: dict[str, Any]) -> str:
    h, w = result["stored_image_size"]
    lines = [
        f"loader: batch {result['batch_size']}, 2 cameras {h}x{w} JPEG -> 224x224, H={result['horizon']}, FAST cached, {result['batches']} batches",
        f"{'run':<32}{'samples/s':>10}{'batches/s':>11}{'x bound':>9}",
        f"{'decode + resize only (bound)':<32}{result['bound_decode_resize']['samples_per_s']:>10.0f}{'':>11}{1.0:>9.2f}",
    ]
    for n, run in result["loader"].items():
        lines.append(
            f"{'loader num_workers=' + n:<32}{run['samples_per_s']:>10.0f}{run['batches_per_s']:>11.1f}{run['ratio_to_bound']:>9.2f}"
        )
    rss = result["worker_rss_mb"]
    for index, sizes in rss.items():
        lines.append(f"worker RSS after {index:>5} batches: " + ", ".join(f"{s:.0f} MB" for s in sizes))
    return "\n".join(lines)


def compare_fast_modes(golden: str | Path) -> list[dict[str, Any]]:
    """Tokens per chunk of `default` vs `compat` FAST fitted on the same chunks, for each golden
    set folder under `golden` (`fit_chunks.npy` to fit, `chunks.npy` to encode)."""
    import numpy as np

    from vla_data.tokenizers import FastTokenizer

    rows = []
    for folder in sorted(p for p in Path(golden).iterdir() if (p / "fit_chunks.npy").exists()):
        fit, chunks = np.load(folder / "fit_chunks.npy"), np.load(folder / "chunks.npy")
        row = {"set": folder.name, "shape": f"{chunks.shape[1]}x{chunks.shape[2]}", "fit_chunks": len(fit)}
        decoded = {}
        for mode in ("compat", "default"):
            fast = FastTokenizer.fit(fit, mode=mode)
            ids = fast.encode(chunks)
            row[mode] = float(np.mean([len(x) for x in ids]))
            decoded[mode], _ = fast.decode(ids, horizon=chunks.shape[1], action_dim=chunks.shape[2])
        row["identical_reconstruction"] = bool(np.array_equal(decoded["compat"], decoded["default"]))
        row["saving"] = 1 - row["default"] / row["compat"]
        rows.append(row)
    return rows


def format_modes_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'set':<18}{'shape':>7}{'compat':>9}{'default':>9}{'saving':>8}  same decode"]
    for r in rows:
        lines.append(
            f"{r['set']:<18}{r['shape']:>7}{r['compat']:>9.1f}{r['default']:>9.1f}{r['saving']:>8.1%}  {r['identical_reconstruction']}"
        )
    return "\n".join(lines)
