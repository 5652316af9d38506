"""Per-dimension statistics of a dataset's numeric features, read from its shards in bounded blocks.

Each shard is opened as a plain file (never memory-mapped: mapped pages of the image columns would
count in this process's RSS) and read one record batch (one episode) at a time, keeping copies of
only the numeric columns. Batches are gathered into blocks of at most `BLOCK_ROWS` steps before they go
into `RunningStats`, so memory is bounded by a block, whatever the size of a shard or the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from vla_data.schema import Feature, column_to_numpy
from vla_data.stats import RunningStats

BLOCK_ROWS = 16384  # steps per statistics update: ~1.8 MB per float64 copy of a 14-dim feature


def numeric_features(features: dict[str, Feature]) -> list[Feature]:
    """The features statistics are kept for: numbers per step (not images, text or lists)."""
    return [
        f
        for f in features.values()
        if f.kind not in ("image", "text", "list") and np.dtype(f.dtype).kind in "fiub"
    ]


def stats_from_files(
    files: Iterable[str], open_file: Callable[[str], Any], features: dict[str, Feature]
) -> dict[str, Any]:
    """Statistics over the shards `files` (in order); `open_file(name)` gives a pyarrow input file."""
    numeric = numeric_features(features)
    running = {f.name: RunningStats() for f in numeric}
    if not numeric:
        return {}
    pending: dict[str, list[np.ndarray]] = {f.name: [] for f in numeric}
    rows = 0

    def flush() -> None:
        for feature in numeric:
            parts = pending[feature.name]
            if parts:
                values = parts[0] if len(parts) == 1 else np.concatenate(parts)
                running[feature.name].update(values.reshape(len(values), -1))
            parts.clear()

    for name in files:
        with open_file(name) as f:
            schema = pa.ipc.open_file(f).schema
            fields = [schema.get_field_index(feature.name) for feature in numeric]
            reader = pa.ipc.open_file(f, options=pa.ipc.IpcReadOptions(included_fields=fields))
            for i in range(reader.num_record_batches):
                batch = reader.get_batch(i)
                for feature in numeric:  # a copy: a view would keep the batch's whole body (images too)
                    values = column_to_numpy(batch.column(feature.name), feature)
                    pending[feature.name].append(np.array(values, copy=True))
                rows += batch.num_rows
                if rows >= BLOCK_ROWS:
                    flush()
                    rows = 0
    flush()
    return {name: stats.result() for name, stats in running.items() if stats.count}
