"""Loader benchmark: samples/s per worker count against decode+resize, worker RSS over time."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from vla_data.bench.timing import median_seconds


def _children_rss_mb() -> list[dict[str, float]]:
    """Resident memory of this process's DataLoader workers, from /proc: total (`rss`) and
    anonymous (`anon`, the heap: what a leak grows; the rest is memory-mapped shard pages, shared
    with the page cache and reclaimable). Helpers such as multiprocessing's resource tracker are
    children but not workers, and are left out."""
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
            if os.readlink(f"/proc/{pid}/exe") != os.readlink("/proc/self/exe"):
                continue  # not a Python process (e.g. a server a test started): not a worker
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"resource_tracker" in f.read():
                    continue
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            sizes.append(
                {
                    "rss": int(fields["VmRSS"].split()[0]) / 1024,
                    "anon": int(fields["RssAnon"].split()[0]) / 1024,
                }
            )
        except (OSError, KeyError):
            continue
    return sizes


def worker_rss_over_data(
    root: Path, *, batch_size: int, horizon: int, rss_batches: int, workers: int = 2
) -> dict[str, Any]:
    """Worker RSS while a loader walks one pass over a generated dataset of exactly
    `rss_batches x batch_size` steps: measured after 1%, 10%, 50% and 100% of its steps were drawn
    (a pass never repeats a step), so memory that grows with the data touched shows."""
    from vla_data.bench.synthetic import SyntheticRobotSource
    from vla_data.convert import ConvertOptions, convert
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.loader.fast_cache import build_fast_cache
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    steps = rss_batches * batch_size
    episode_steps = 400
    convert(
        SyntheticRobotSource(-(-steps // episode_steps), episode_steps),
        root / "rss",
        ConvertOptions(progress=False),
    )
    chunks = sample_chunks([root / "rss"], ChunkSpec(horizon=horizon, max_chunks=2000))
    FastTokenizer.fit(chunks.values, vocab_size=512).save_pretrained(root / "rss_fast")
    config = LoaderConfig(
        sources=(SourceConfig("robot", (str(root / "rss"),)),),
        fast_tokenizer=str(root / "rss_fast"),
        fast_mapping="append",
        batch_size=batch_size,
        horizon=horizon,
        max_tokens=512,
        samples_per_epoch=steps,
        num_workers=workers,
    )
    build_fast_cache(make_loader(config).sources[0], 0)
    loader = make_loader(config)
    dataset_steps = len(loader.sources[0])
    marks = sorted(
        {max(1, rss_batches // 100), max(1, rss_batches // 10), max(1, rss_batches // 2), rss_batches}
    )
    points = []
    for index, _ in enumerate(loader, 1):
        if index in marks:
            points.append(
                {
                    "batches": index,
                    "steps_touched": index * batch_size / dataset_steps,
                    "workers": _children_rss_mb(),
                }
            )
        if index == marks[-1]:
            break
    return {"dataset_steps": dataset_steps, "points": points}


def bench_loader(
    *,
    batch_size: int = 32,
    horizon: int = 50,
    batches: int = 150,
    rss_batches: int = 1000,
    workers: list[int] = (0, 1, 2),
    image_size: tuple[int, int] = (240, 320),
    work_dir: str | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """Loader samples/s for batch 32, 2 cameras, H=50 per worker count, the decode+resize bound of
    the same images, and worker RSS across `rss_batches` batches of a dataset they traverse once;
    with `profile`, also the time per sample of each loader stage (`loader_profile.profile_loader`)."""
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
            samples_per_epoch=batch_size * (batches + 1),  # + the warm-up batch
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

        bound = median_seconds(decode_resize, 3) / len(frames)  # seconds per sample
        stages = None
        if profile:
            from vla_data.bench.loader_profile import profile_loader

            stages = profile_loader(make_loader(config), batches)
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
        rss = worker_rss_over_data(root, batch_size=batch_size, horizon=horizon, rss_batches=rss_batches)
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
            **({"profile": stages} if stages else {}),
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
    lines.append(
        f"worker RSS over one pass of a generated {rss['dataset_steps']}-step dataset (total / anonymous):"
    )
    for point in rss["points"]:
        sizes = ", ".join(f"{w['rss']:.0f} / {w['anon']:.0f} MB" for w in point["workers"])
        lines.append(
            f"  after {point['batches']:>5} batches ({point['steps_touched']:>4.0%} of steps): {sizes}"
        )
    if "profile" in result:
        from vla_data.bench.loader_profile import format_profile

        bound_us = 1e6 / result["bound_decode_resize"]["samples_per_s"]
        lines += ["", format_profile(result["profile"], bound_us)]
    return "\n".join(lines)
