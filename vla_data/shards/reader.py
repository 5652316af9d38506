"""Memory-mapped, random-access reading of a converted dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vla_data.errors import FormatVersionError, ShardError
from vla_data.progress import progress
from vla_data.schema import FORMAT_VERSION, Feature, column_to_numpy
from vla_data.shards.manifest import EPISODES_FILE, MANIFEST_FILE, Manifest, ShardInfo, load_manifest
from vla_data.stats import RunningStats
from vla_data.storage import filesystem, is_uri


def open_arrow_file(path: Path) -> pa.Table:
    """Memory-map an Arrow IPC file; the table's buffers point into the page cache (zero-copy)."""
    try:
        return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    except (OSError, pa.ArrowInvalid) as e:
        raise ShardError(f"{path}: cannot be read as an Arrow IPC file ({e})") from e


def _check_version(manifest: Manifest, where: str) -> None:
    if manifest.format_version != FORMAT_VERSION:
        raise FormatVersionError(
            f"{where}: format_version {manifest.format_version!r} is not supported (supports {FORMAT_VERSION})"
        )


def stats_from_shards(root: Path, shards: list[ShardInfo], features: dict[str, Feature]) -> dict[str, Any]:
    """Per-dimension statistics of every numeric feature, streaming shard by shard."""
    numeric = [
        f
        for f in features.values()
        if f.kind not in ("image", "text", "list") and np.dtype(f.dtype).kind in "fiub"
    ]
    running = {f.name: RunningStats() for f in numeric}
    for info in progress(shards, "stats"):
        table = open_arrow_file(Path(root) / info.file)
        for feature in numeric:
            values = column_to_numpy(table.column(feature.name), feature)
            running[feature.name].update(values.reshape(len(values), -1))
    return {name: stats.result() for name, stats in running.items() if stats.count}


class ShardDataset:
    """Random access to the steps and episodes of a converted dataset.

    Local shards are memory-mapped on first use, so reading one step touches only that step's
    shard and worker processes share the page cache. A URI root (file://, s3://, gs://, hdfs://)
    is read through its pyarrow filesystem one episode (one record batch) at a time: ranged reads,
    never a whole-file download.
    """

    def __init__(self, root: str | Path):
        self.uri = str(root) if is_uri(root) else None
        if self.uri:
            self.filesystem, inner = filesystem(root)
            self.root = Path(inner)
            self.manifest = Manifest.from_json(json.loads(self._read_bytes(MANIFEST_FILE)))
            _check_version(self.manifest, self.uri)
            episodes = pa.ipc.open_file(pa.py_buffer(self._read_bytes(EPISODES_FILE))).read_all()
        else:
            self.root = Path(root)
            self.manifest = load_manifest(self.root)
            episodes = open_arrow_file(self.root / EPISODES_FILE)
        self.episode_shard = episodes.column("shard").to_numpy()
        self.episode_offset = episodes.column("row_offset").to_numpy()
        self.episode_length = episodes.column("length").to_numpy()
        self.episode_task = episodes.column("task_index").to_numpy()
        self.episode_source = episodes.column("source_ref").to_pylist()
        self.episode_start = np.concatenate([[0], np.cumsum(self.episode_length)])
        # k-th episode of its shard = k-th record batch: the writer and merge write one batch per episode
        order = np.lexsort((self.episode_offset, self.episode_shard))
        self.episode_batch = np.empty(len(order), np.int64)
        for shard in np.unique(self.episode_shard):
            members = order[self.episode_shard[order] == shard]
            self.episode_batch[members] = np.arange(len(members))
        self._tables: dict[int, Any] = {}

    def _read_bytes(self, name: str) -> bytes:
        try:
            with self.filesystem.open_input_stream(f"{self.root}/{name}") as f:
                return f.read()
        except FileNotFoundError as e:
            raise ShardError(f"{self.uri}: no {name}: not a complete vla-data dataset") from e

    def __len__(self) -> int:
        return int(self.episode_start[-1])

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps are reopened in each worker process rather than pickled.
        return {**self.__dict__, "_tables": {}}

    @property
    def features(self) -> dict[str, Feature]:
        return self.manifest.features

    @property
    def num_episodes(self) -> int:
        return len(self.episode_length)

    def shard_table(self, shard: int) -> pa.Table:
        """A whole shard (memory-mapped when local)."""
        if self.uri:
            reader = self._remote_reader(shard)
            return pa.Table.from_batches([reader.get_batch(i) for i in range(reader.num_record_batches)])
        table = self._tables.get(shard)
        if table is None:
            table = open_arrow_file(self.root / self.manifest.shards[shard].file)
            self._tables[shard] = table
        return table

    def _remote_reader(self, shard: int) -> pa.ipc.RecordBatchFileReader:
        reader = self._tables.get(shard)
        if reader is None:
            path = f"{self.root}/{self.manifest.shards[shard].file}"
            reader = pa.ipc.open_file(self.filesystem.open_input_file(path))
            self._tables[shard] = reader
        return reader

    def episode_table(self, episode: int) -> pa.Table:
        """The rows of one episode (a zero-copy slice of its shard, or one ranged read remotely)."""
        if not 0 <= episode < self.num_episodes:
            raise IndexError(f"episode {episode} out of range (dataset has {self.num_episodes})")
        shard = int(self.episode_shard[episode])
        if self.uri:
            batch = self._remote_reader(shard).get_batch(int(self.episode_batch[episode]))
            if batch.num_rows != self.episode_length[episode]:
                raise ShardError(f"{self.uri}: shard {shard} does not hold one record batch per episode")
            return pa.Table.from_batches([batch])
        table = self.shard_table(shard)
        return table.slice(int(self.episode_offset[episode]), int(self.episode_length[episode]))

    def episode(self, episode: int, columns: list[str] | None = None) -> dict[str, Any]:
        """The columns of one episode (all by default): numeric ones as `[T, ...]` arrays, images as
        lists of bytes. Name only the columns you need: images are copied out of the shard."""
        table = self.episode_table(episode)
        if columns is not None:
            table = table.select([c for c in columns if c in table.column_names])
        return self.columns(table)

    def locate(self, index: int) -> tuple[int, int]:
        """Global step index -> (episode, frame)."""
        if not 0 <= index < len(self):
            raise IndexError(f"step {index} out of range (dataset has {len(self)})")
        episode = int(np.searchsorted(self.episode_start, index, side="right") - 1)
        return episode, int(index - self.episode_start[episode])

    def step(self, index: int) -> dict[str, Any]:
        episode, frame = self.locate(index)
        row = self.episode_table(episode).slice(frame, 1)
        return {k: v[0] for k, v in self.columns(row).items()}

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One step, decoded: numbers as numpy scalars / `[D]` arrays, images as uint8 `[H, W, 3]`,
        text as str. `ds[-1]` is the last step; `step()` keeps images encoded."""
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"ShardDataset indices are integers (global step), got {index!r}")
        from vla_data.images import decode_image

        step = self.step(int(index) + len(self) if index < 0 else int(index))
        for name, feature in self.features.items():
            if feature.kind == "image" and name in step:
                step[name] = decode_image(step[name])
        return step

    def columns(self, table: pa.Table) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in table.column_names:
            feature = self.features.get(name)
            column = table.column(name)
            if feature is not None and feature.kind in ("image", "text", "list"):
                out[name] = column.to_pylist()
            elif feature is not None:
                out[name] = column_to_numpy(column, feature)
            else:
                out[name] = column.to_numpy()
        return out

    def task(self, episode: int) -> str:
        return self.manifest.tasks[int(self.episode_task[episode])]

    def source_ref(self, episode: int) -> dict[str, Any]:
        return json.loads(self.episode_source[episode])


def recompute_stats(root: str | Path) -> dict[str, Any]:
    """Recompute the statistics of every numeric feature and store them in the manifest."""
    from vla_data.shards.manifest import MANIFEST_FILE, write_json_atomic

    manifest = load_manifest(root)
    manifest.stats = stats_from_shards(Path(root), manifest.shards, manifest.features)
    write_json_atomic(Path(root) / MANIFEST_FILE, manifest.to_json())
    return manifest.stats
