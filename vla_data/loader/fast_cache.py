"""Pre-tokenized FAST targets: a sidecar Arrow file with the ids of the chunk at every step."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from vla_data.schema import ACTION, STATE

from .robot import FAST_CACHE_DIR, RobotDataset

SCHEMA = pa.schema([("ids", pa.list_(pa.int32()))])
BATCH_ROWS = 65_536  # steps per record batch: the ids held in memory before they are written


def ids_array(ids: list) -> pa.ListArray:
    """One list<int32> row per chunk from the encoder's id sequences, through flat numpy buffers."""
    lengths = np.fromiter(map(len, ids), np.int32, len(ids))
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32)
    values = np.fromiter(itertools.chain.from_iterable(ids), np.int32, int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def build_fast_cache(
    robot: RobotDataset, d: int, *, progress: bool = False, batch_rows: int = BATCH_ROWS
) -> Path:
    """Write `<root>/fast_cache/<key>.arrow` for dataset `d` of `robot`; rows follow global steps.

    Episodes are encoded one at a time and written in record batches of about `batch_rows`
    steps, so memory is bounded by one batch (plus one episode), not by the dataset.
    """
    from tqdm import tqdm

    ds = robot.datasets[d]
    folder = Path(ds.root) / FAST_CACHE_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{robot.cache_key(d)}.arrow"
    tmp = path.with_name(path.name + ".tmp")
    pending: list[pa.ListArray] = []
    rows = 0
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
        for episode in tqdm(
            range(ds.num_episodes), desc=f"cache {ds.root.name}", disable=not progress, unit="episode"
        ):
            data = ds.episode(episode, [ACTION, STATE])
            actions = data[ACTION].reshape(len(data[ACTION]), -1)
            state = data[STATE].reshape(len(actions), -1) if STATE in data else None
            chunks, _ = robot.normalized_chunks(d, actions, state, np.arange(len(actions)))
            pending.append(ids_array(robot.fast.encode(chunks, on_error="clip")))
            rows += len(actions)
            if rows >= batch_rows:
                writer.write_batch(pa.record_batch([pa.concat_arrays(pending)], schema=SCHEMA))
                pending, rows = [], 0
        if pending:
            writer.write_batch(pa.record_batch([pa.concat_arrays(pending)], schema=SCHEMA))
    os.replace(tmp, path)
    robot.cache_paths[d] = path
    return path
