"""Pre-tokenized FAST targets: a sidecar Arrow file with the ids of the chunk at every step."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from vla_data.schema import ACTION, STATE

from .robot import FAST_CACHE_DIR, RobotDataset


def build_fast_cache(robot: RobotDataset, d: int, *, progress: bool = False) -> Path:
    """Write `<root>/fast_cache/<key>.arrow` for dataset `d` of `robot`; rows follow global steps."""
    from tqdm import tqdm

    ds = robot.datasets[d]
    ids: list[list[int]] = []
    for episode in tqdm(
        range(ds.num_episodes), desc=f"cache {ds.root.name}", disable=not progress, unit="episode"
    ):
        data = ds.episode(episode, [ACTION, STATE])
        actions = data[ACTION].reshape(len(data[ACTION]), -1)
        state = data[STATE].reshape(len(actions), -1) if STATE in data else None
        chunks, _ = robot.normalized_chunks(d, actions, state, np.arange(len(actions)))
        ids += robot.fast.encode(chunks, on_error="clip")
    folder = Path(ds.root) / FAST_CACHE_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{robot.cache_key(d)}.arrow"
    table = pa.table({"ids": pa.array(ids, type=pa.list_(pa.int32()))})
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)
    robot.cache_paths[d] = path
    return path
