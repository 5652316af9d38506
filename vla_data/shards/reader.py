"""Memory-mapped, random-access reading of a converted dataset."""

from __future__ import annotations

import json
import os
import pickle
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from vla_data.errors import FormatVersionError, ShardError
from vla_data.progress import progress
from vla_data.schema import FORMAT_VERSION, Feature, column_to_numpy
from vla_data.shards.access import MappedShard, ReadCounter, RemoteShard
from vla_data.shards.cache import DEFAULT_CACHE_LIMIT, ShardCache, default_cache_dir
from vla_data.shards.manifest import EPISODES_FILE, MANIFEST_FILE, Manifest, ShardInfo, load_manifest
from vla_data.shards.pages import DEFAULT_PAGE_BUDGET, map_file
from vla_data.shards.pages import check as check_page_budget
from vla_data.storage import display_uri, filesystem, is_uri, local_path

STEP_COLUMNS = ("episode_index", "frame_index", "timestamp", "task_index")
LOCAL_OPEN_SHARDS = 64  # memory maps kept open per process (pages are the OS's; this bounds handles)
REMOTE_OPEN_SHARDS = 8  # cached maps (an evicted shard's disk space returns when dropped) or remote files
RECHECK_SECONDS = 1.0  # how often a cached shard in use is marked used and checked for eviction


def open_arrow_file(path: Path) -> pa.Table:
    """Memory-map an Arrow IPC file; the table's buffers point into the page cache (zero-copy), its
    pages under the process's page budget (`vla_data.shards.pages`)."""
    try:
        return pa.ipc.open_file(pa.BufferReader(map_file(path))).read_all()
    except (OSError, ValueError, pa.ArrowInvalid) as e:
        raise ShardError(f"{path}: cannot be read as an Arrow IPC file ({e})") from e


def _check_version(manifest: Manifest, where: str) -> None:
    if manifest.format_version != FORMAT_VERSION:
        raise FormatVersionError(
            f"{where}: format_version {manifest.format_version!r} is not supported (supports {FORMAT_VERSION})"
        )


def stats_from_shards(root: Path, shards: list[ShardInfo], features: dict[str, Feature]) -> dict[str, Any]:
    """Per-dimension statistics of every numeric feature, streaming shard by shard in bounded blocks."""
    from vla_data.shards.shard_stats import stats_from_files

    files = (str(Path(root) / info.file) for info in progress(shards, "stats"))
    return stats_from_files(files, pa.OSFile, features)


class ShardDataset:
    """Random access to the steps and episodes of a converted dataset.

    Local shards (paths or file:// URIs) are memory-mapped on first use, so reading one step
    touches only that step's shard and worker processes share the page cache. A remote root
    (s3://, gs://, hdfs://) is read in one of two ways:

    - through a node-local shard cache (`cache_dir`, default ~/.cache/vla-data/shards, at most
      `cache_limit` bytes, default 32 GiB): each shard is fetched whole once, checked against the
      manifest's sha256 and then memory-mapped like a local one; see `vla_data.shards.cache`;
    - with `cache_limit=0`, by ranged reads of only the rows and columns a caller asks for.

    Mapped pages stay in a process's RSS once touched; `page_budget` (default 64 MiB) bounds them:
    when the process's resident file pages have grown by more than that since the last release,
    every map's pages are released (they stay in the page cache and are read again when touched;
    see `vla_data.shards.pages`). It is checked on every `rows()` call and by `check_pages()`,
    which callers that keep views of rows across calls (the loader) call once per sample. One
    budget per process: with several datasets open, the smallest applies. None: no budget.

    `storage_options` are pyarrow filesystem options (see `vla_data.storage`). `fetched` counts
    the bytes and requests this process read from remote storage.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        cache_dir: str | Path | None = None,
        cache_limit: int | None = None,
        storage_options: dict[str, Any] | None = None,
        page_budget: int | None = DEFAULT_PAGE_BUDGET,
    ):
        if page_budget is not None and page_budget < 0:
            raise ValueError(f"page_budget must be >= 0 bytes or None (no budget), got {page_budget}")
        self.page_budget = page_budget
        self.uri = str(root) if is_uri(root) else None
        self.fetched = ReadCounter()
        self.cache: ShardCache | None = None
        self._open: OrderedDict[int, Any] = OrderedDict()
        self._open_limit = LOCAL_OPEN_SHARDS
        self.filesystem, inner = filesystem(root, storage_options)
        self._fs_pid = -1
        self.remote = not isinstance(self.filesystem, pafs.LocalFileSystem)
        if self.remote:
            self.root = Path(inner)
            self.manifest = Manifest.from_json(json.loads(self._read_bytes(MANIFEST_FILE)))
            _check_version(self.manifest, self.name)
            episodes = pa.ipc.open_file(pa.py_buffer(self._read_bytes(EPISODES_FILE))).read_all()
            limit = DEFAULT_CACHE_LIMIT if cache_limit is None else int(cache_limit)
            if limit < 0:
                raise ValueError(f"cache_limit must be >= 0 bytes, got {limit}")
            if limit:
                self._check_cache_limit(limit)
                self.cache = ShardCache(cache_dir or default_cache_dir(), limit)
            self._open_limit = REMOTE_OPEN_SHARDS
        else:
            self.root = Path(inner) if self.uri else Path(root)
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
        shards = self.episode_shard[order]
        first = np.searchsorted(shards, shards, side="left")
        self.episode_batch[order] = np.arange(len(order)) - first

    @property
    def name(self) -> str:
        """The root as messages show it (a URI without its query, never credentials)."""
        return display_uri(self.uri) if self.uri else str(self.root)

    def _check_cache_limit(self, limit: int) -> None:
        largest = max(self.manifest.shards, key=lambda s: s.bytes, default=None)
        if largest is not None and largest.bytes > limit:
            raise ValueError(
                f"{self.name}: cache_limit {limit} bytes cannot hold {largest.file} ({largest.bytes} "
                "bytes); raise cache_limit or pass cache_limit=0 to read remotely without a cache"
            )

    def remote_fs(self) -> pafs.FileSystem:
        """This process's filesystem object. A forked DataLoader worker must not reuse its parent's
        HTTP connections (two processes reading one socket mix their responses), so each process
        rebuilds the filesystem from its pickled options."""
        if self._fs_pid != os.getpid():
            if self._fs_pid != -1:
                self.filesystem = pickle.loads(pickle.dumps(self.filesystem))
            self._fs_pid = os.getpid()
        return self.filesystem

    def _read_bytes(self, name: str) -> bytes:
        try:
            with self.remote_fs().open_input_stream(f"{self.root}/{name}") as f:
                data = f.read()
        except FileNotFoundError as e:
            raise ShardError(f"{self.name}: no {name}: not a complete vla-data dataset") from e
        self.fetched.bytes += len(data)
        self.fetched.requests += 1
        return data

    def __len__(self) -> int:
        return int(self.episode_start[-1])

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps and remote files are reopened in each worker process rather than pickled.
        return {**self.__dict__, "_open": OrderedDict()}

    @property
    def features(self) -> dict[str, Feature]:
        return self.manifest.features

    @property
    def num_episodes(self) -> int:
        return len(self.episode_length)

    def _shard(self, shard: int, *, ranged: bool = False):
        """The open `MappedShard` (local or cached) or `RemoteShard` (no cache, or `ranged`)."""
        key = -1 - shard if ranged else shard
        entry = self._open.get(key)
        now = time.monotonic()
        if entry is not None and entry[1] is not None and now - entry[2] > RECHECK_SECONDS:
            if self.cache.touch(entry[1]):  # mark it used for the LRU, at most once a second
                entry[2] = now
            else:  # evicted by another process: drop our map, fetch it again
                entry = None
        if entry is None:
            info = self.manifest.shards[shard]
            path = None
            if not self.remote:
                access = MappedShard(str(self.root / info.file))
            elif self.cache is None or ranged:
                access = RemoteShard(self.remote_fs, f"{self.root}/{info.file}", self.fetched)
            else:
                path = self.cache.fetch(info, self.remote_fs(), f"{self.root}/{info.file}", self.fetched)
                access = MappedShard(str(path))
            entry = self._open[key] = [access, path, now]
            while len(self._open) > self._open_limit:
                self._open.popitem(last=False)
        self._open.move_to_end(key)
        return entry[0]

    def check_pages(self) -> bool:
        """Release this process's mapped shard pages if they grew past `page_budget` (a few
        microseconds). True when it released them."""
        return check_page_budget(self.page_budget)

    def shard_table(self, shard: int) -> pa.Table:
        """A whole shard (memory-mapped when local or cached)."""
        return self._shard(shard).whole()

    def rows(
        self, episode: int, start: int, stop: int, columns: list[str] | None = None, *, ranged: bool = False
    ) -> pa.Table:
        """Rows `start:stop` of one episode, only `columns` (all by default). Locally a zero-copy
        slice; remotely without a cache (or with `ranged=True`, which bypasses the cache) only the
        byte ranges of those rows and columns are read."""
        if not 0 <= episode < self.num_episodes:
            raise IndexError(f"episode {episode} out of range (dataset has {self.num_episodes})")
        length = int(self.episode_length[episode])
        if not 0 <= start <= stop <= length:
            raise IndexError(f"rows {start}:{stop} out of range for episode {episode} of {length} steps")
        if columns is not None:
            columns = [c for c in columns if c in self.features or c in STEP_COLUMNS]
        self.check_pages()
        shard = int(self.episode_shard[episode])
        access = self._shard(shard, ranged=ranged)
        batch = int(self.episode_batch[episode])
        if isinstance(access, RemoteShard):
            rows = access.layout(batch)[1].rows
            if rows != length:
                raise ShardError(f"{self.name}: shard {shard} does not hold one record batch per episode")
            return access.rows(batch, start, stop, columns)
        return access.rows(batch, int(self.episode_offset[episode]), start, stop, columns)

    def episode_table(self, episode: int, columns: list[str] | None = None) -> pa.Table:
        """The rows of one episode (a zero-copy slice of its shard when local or cached)."""
        if not 0 <= episode < self.num_episodes:
            raise IndexError(f"episode {episode} out of range (dataset has {self.num_episodes})")
        return self.rows(episode, 0, int(self.episode_length[episode]), columns)

    def episode(self, episode: int, columns: list[str] | None = None) -> dict[str, Any]:
        """The columns of one episode (all by default): numeric ones as `[T, ...]` arrays, images as
        lists of bytes. Name only the columns you need: only those are read."""
        return self.columns(self.episode_table(episode, columns))

    def locate(self, index: int) -> tuple[int, int]:
        """Global step index -> (episode, frame)."""
        if not 0 <= index < len(self):
            raise IndexError(f"step {index} out of range (dataset has {len(self)})")
        episode = int(np.searchsorted(self.episode_start, index, side="right") - 1)
        return episode, int(index - self.episode_start[episode])

    def step(self, index: int, columns: list[str] | None = None) -> dict[str, Any]:
        episode, frame = self.locate(index)
        row = self.rows(episode, frame, frame + 1, columns)
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
    """Recompute the statistics of every numeric feature and store them in the manifest (on
    object storage: reading only the numeric columns)."""
    from vla_data.object_store import recompute_stats_on_store, remote_filesystem
    from vla_data.shards.manifest import MANIFEST_FILE, write_json_atomic

    if remote_filesystem(root):
        return recompute_stats_on_store(str(root))
    root = local_path(root)
    manifest = load_manifest(root)
    manifest.stats = stats_from_shards(Path(root), manifest.shards, manifest.features)
    write_json_atomic(Path(root) / MANIFEST_FILE, manifest.to_json())
    return manifest.stats
