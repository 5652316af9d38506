"""Concatenate converted datasets: renumber episodes, merge task lists, recompute statistics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vla_data.errors import ShardError
from vla_data.progress import progress
from vla_data.shards.manifest import EPISODES_FILE, SHARD_DIR, Manifest, ShardInfo, load_manifest, shard_path
from vla_data.shards.reader import open_arrow_file
from vla_data.shards.writer import TaskIndex, commit_dataset, sha256_file

STAGING_DIR = ".units"  # conversion units live here until they are merged into OUT


def _check_compatible(manifests: list[Manifest], inputs: list[Path]) -> Manifest:
    filled = [(m, p) for m, p in zip(manifests, inputs, strict=True) if m.num_episodes]
    if not filled:
        raise ShardError("no episode in any input: " + ", ".join(map(str, inputs)))
    first, first_path = filled[0]
    for manifest, path in filled[1:]:
        if manifest.fps != first.fps:
            raise ShardError(f"{path}: fps {manifest.fps} differs from {first.fps} of {first_path}")
        a = {n: _stored(f) for n, f in first.features.items()}
        b = {n: _stored(f) for n, f in manifest.features.items()}
        if a != b:
            diff = sorted(set(a) ^ set(b)) or [n for n in a if a[n] != b[n]]
            raise ShardError(f"{path}: features differ from {first_path} (first difference: {diff[0]!r})")
    return first


def _stored(feature) -> dict:
    """What the shards store; the source size of resized frames (`original_*`) may differ per input."""
    return {k: v for k, v in feature.to_json().items() if not k.startswith("original_")}


def merge_datasets(
    inputs: list[str | Path], out: str | Path, *, source: dict[str, Any] | None = None
) -> Manifest:
    """Write one dataset at `out` holding every episode of `inputs`, in order.

    Shards are rewritten (episode and task indices renumbered), one output shard per input shard;
    statistics are recomputed from the merged shards, so they carry the usual quantile bound.
    """
    inputs = [Path(p) for p in inputs]
    out = Path(out)
    if out.exists() and any(p.name != STAGING_DIR for p in out.iterdir()):
        raise ShardError(f"{out} is not empty; merge into a new folder")
    manifests = [load_manifest(p) for p in inputs]
    first = _check_compatible(manifests, inputs)
    (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    tasks = TaskIndex()
    shards: list[ShardInfo] = []
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for manifest, root in progress(
        zip(manifests, inputs, strict=True), "merge", total=len(inputs), unit="dataset"
    ):
        skipped += manifest.skipped
        if not manifest.num_episodes:
            continue
        task_map = np.array([tasks.index(t) for t in manifest.tasks], dtype=np.int32)
        episodes = open_arrow_file(root / EPISODES_FILE).to_pylist()
        offset, shard_base = len(rows), len(shards)
        for row in episodes:
            rows.append(
                {
                    **row,
                    "episode_index": row["episode_index"] + offset,
                    "shard": row["shard"] + shard_base,
                    "task_index": int(task_map[row["task_index"]]),
                }
            )
        for info in manifest.shards:
            table = open_arrow_file(root / info.file)
            table = _renumber(table, offset, task_map)
            shards.append(_write_shard(out, len(shards), table, info))
    merged = Manifest(
        fps=first.fps,
        features=first.features,
        tasks=tasks.tasks,
        shards=shards,
        source=source or {"format": "merge", "inputs": [str(p) for p in inputs]},
        skipped=skipped,
    )
    return commit_dataset(out, merged, rows)


def _renumber(table: pa.Table, episode_offset: int, task_map: np.ndarray) -> pa.Table:
    episodes = table.column("episode_index").to_numpy() + episode_offset
    task_indices = task_map[table.column("task_index").to_numpy()]
    table = table.set_column(
        table.schema.get_field_index("episode_index"), table.schema.field("episode_index"), pa.array(episodes)
    )
    return table.set_column(
        table.schema.get_field_index("task_index"), table.schema.field("task_index"), pa.array(task_indices)
    )


def _write_shard(out: Path, index: int, table: pa.Table, info: ShardInfo) -> ShardInfo:
    path = out / shard_path(index)
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        for batch in table.to_batches():  # one record batch per episode, as the writer made them
            writer.write_batch(batch)
    os.replace(tmp, path)
    return ShardInfo(
        file=shard_path(index),
        rows=info.rows,
        episodes=info.episodes,
        bytes=path.stat().st_size,
        sha256=sha256_file(path),
    )
