"""The rows of `episodes.arrow`, kept as columns while a dataset is written.

A writer keeps one row per episode until it commits. As Python dicts these cost ~0.5 KB each, and
`pa.Table.from_pylist` another ~1 KB each while it converts them; as columns they cost 40 bytes
plus the `source_ref` string, and become Arrow arrays without a per-row step.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

EPISODES_SCHEMA = pa.schema(
    [
        ("episode_index", pa.int64()),
        ("shard", pa.int32()),
        ("row_offset", pa.int64()),
        ("length", pa.int64()),
        ("task_index", pa.int32()),
        ("source_ref", pa.string()),
    ]
)
NUMBERS = ("episode_index", "shard", "row_offset", "length", "task_index")


class EpisodeRows:
    """A list of episode rows (dicts with the `EPISODES_SCHEMA` fields) stored column by column."""

    def __init__(self, rows: Iterable[dict[str, Any]] = ()):
        self._numbers = {name: array("q") for name in NUMBERS}
        self._refs: list[str] = []
        for row in rows:
            self.append(row)

    def append(self, row: dict[str, Any]) -> None:
        for name in NUMBERS:
            self._numbers[name].append(row[name])
        self._refs.append(row["source_ref"])

    def __len__(self) -> int:
        return len(self._refs)

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row: dict[str, Any] = {name: self._numbers[name][index] for name in NUMBERS}
        row["source_ref"] = self._refs[index]
        return row

    def table(self) -> pa.Table:
        columns = {
            field.name: pa.array(
                np.frombuffer(self._numbers[field.name], np.int64).astype(field.type.to_pandas_dtype())
            )
            for field in EPISODES_SCHEMA
            if field.name in NUMBERS
        }
        columns["source_ref"] = pa.array(self._refs, pa.string())
        return pa.table(columns, schema=EPISODES_SCHEMA)


def episodes_table(rows: EpisodeRows | Iterable[dict[str, Any]]) -> pa.Table:
    """`episodes.arrow`'s table from episode rows (columns, or dicts)."""
    return (rows if isinstance(rows, EpisodeRows) else EpisodeRows(rows)).table()
