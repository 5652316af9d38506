"""Loader from object storage: samples/s and bytes fetched per sample, local vs a URI with a cold
cache, a warm cache and no cache, on the same generated dataset in one run."""

from __future__ import annotations

import dataclasses
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def _run(config, batches: int) -> dict[str, Any]:
    """Time `batches` batches, the first included (a cold cache fetches most shards early); bytes
    are counted by the datasets of this process (num_workers=0)."""
    from vla_data.loader import make_loader

    start = time.perf_counter()
    loader = make_loader(config)
    datasets = [ds for source in loader.sources for ds in source.datasets]
    opened = sum(ds.fetched.bytes for ds in datasets)
    opened_requests = sum(ds.fetched.requests for ds in datasets)
    open_seconds = time.perf_counter() - start
    iterator = iter(loader)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    seconds = time.perf_counter() - start
    samples = batches * config.batch_size
    return {
        "samples_per_s": samples / seconds,
        "bytes_per_sample": (sum(ds.fetched.bytes for ds in datasets) - opened) / samples,
        "requests_per_sample": (sum(ds.fetched.requests for ds in datasets) - opened_requests) / samples,
        "open_bytes": opened,
        "open_s": open_seconds,
    }


def bench_remote_loader(
    uri: str,
    *,
    storage_options: dict[str, Any] | None = None,
    batch_size: int = 32,
    horizon: int = 50,
    batches: int = 40,
    episodes: int = 10,
    steps: int = 300,
    image_size: tuple[int, int] = (240, 320),
    shard_mb: float = 16,
    work_dir: str | None = None,
) -> dict[str, Any]:
    """Generate a robot dataset, upload it under `uri/bench-<random>/`, and load the same batches
    from the local copy, from the URI through a cold then warm shard cache, and without a cache.
    FAST ids are computed per sample in every run (the pre-tokenized cache is local-only)."""
    from vla_data.convert import ConvertOptions, convert, upload_dataset
    from vla_data.loader import LoaderConfig, SourceConfig
    from vla_data.samples import write_aloha_sample
    from vla_data.shards import ShardDataset
    from vla_data.sources.hdf5 import HDF5Source
    from vla_data.storage import display_uri, filesystem
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    target = f"{uri.rstrip('/')}/bench-{uuid.uuid4().hex[:8]}"
    fs, inner = filesystem(target, storage_options)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        root = Path(tmp)
        write_aloha_sample(
            root / "raw", episodes=episodes, steps=steps, height=image_size[0], width=image_size[1]
        )
        convert(
            HDF5Source.from_paths(root / "raw", layout="aloha", task="pick up the cube"),
            root / "robot",
            ConvertOptions(shard_bytes=int(shard_mb * 1e6)),
        )
        FastTokenizer.fit(sample_chunks([root / "robot"], ChunkSpec(horizon=horizon)).values).save_pretrained(
            root / "fast"
        )
        upload_dataset(root / "robot", fs, f"{inner}/robot")
        try:
            local = LoaderConfig(
                sources=(SourceConfig("robot", (str(root / "robot"),)),),
                fast_tokenizer=str(root / "fast"),
                fast_mapping="append",
                batch_size=batch_size,
                horizon=horizon,
                max_tokens=512,
                use_fast_cache=False,
            )
            remote = dataclasses.replace(
                local,
                sources=(SourceConfig("robot", (f"{target}/robot",)),),
                storage_options=storage_options,
                cache_dir=str(root / "cache"),
            )
            runs = {
                "local": _run(local, batches),
                "cache cold": _run(remote, batches),
                "cache warm": _run(remote, batches),
                "no cache": _run(dataclasses.replace(remote, cache_limit=0), batches),
            }
            ds = ShardDataset(root / "robot")
            sample_bytes = ds.rows(
                0, 0, 1, [n for n in ds.features if n.startswith("observation.images.")]
            ).nbytes
        finally:
            fs.delete_dir(inner)
    return {
        "uri": display_uri(target),
        "batch_size": batch_size,
        "horizon": horizon,
        "batches": batches,
        "frames": episodes * steps,
        "stored_image_size": list(image_size),
        "dataset_bytes": sum(s.bytes for s in ds.manifest.shards),
        "shards": len(ds.manifest.shards),
        "one_sample_frames_bytes": sample_bytes,
        "runs": runs,
    }


def format_remote_table(result: dict[str, Any]) -> str:
    h, w = result["stored_image_size"]
    lines = [
        f"loader from {result['uri']}: batch {result['batch_size']}, 2 cameras {h}x{w} JPEG -> 224x224, "
        f"H={result['horizon']}, FAST per sample, {result['batches']} batches, num_workers=0",
        f"dataset {result['frames']} frames, {result['shards']} shards, {result['dataset_bytes'] / 1e6:.1f} MB; "
        f"one sample's two frames: {result['one_sample_frames_bytes'] / 1e3:.1f} kB",
        f"{'run':<14}{'samples/s':>10}{'kB/sample':>11}{'requests/sample':>17}{'open s':>8}",
    ]
    for name, run in result["runs"].items():
        lines.append(
            f"{name:<14}{run['samples_per_s']:>10.0f}{run['bytes_per_sample'] / 1e3:>11.1f}"
            f"{run['requests_per_sample']:>17.1f}{run['open_s']:>8.2f}"
        )
    return "\n".join(lines)
