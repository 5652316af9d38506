"""`verify`: recheck a converted dataset against its manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from vla_data.errors import ShardError
from vla_data.object_store import read_bytes, read_manifest, remote_filesystem
from vla_data.progress import progress
from vla_data.shards.manifest import EPISODES_FILE, Manifest, load_manifest
from vla_data.shards.reader import open_arrow_file
from vla_data.shards.writer import sha256_file
from vla_data.storage import display_uri, local_path


def verify_dataset(
    root: str | Path, *, deep: bool = False, storage_options: dict[str, Any] | None = None
) -> list[str]:
    """Every problem found, as one message each; an empty list means the dataset is intact.

    Checks each shard's presence, size and sha256, its row and episode counts, and that
    `episodes.arrow` and the step columns agree (episode indices, frame indices 0..T-1, tasks).
    `deep` also decodes every stored frame (`verify_frames`), once the shards are known intact.
    `root` may be on object storage: shards are then hashed as they stream (never stored) and
    only their index columns are read.
    """
    remote = remote_filesystem(root, storage_options)
    if remote and deep:
        raise ValueError(f"{display_uri(root)}: --deep decodes every frame; run it on a local copy")
    files = _StoreFiles(root, storage_options) if remote else _LocalFiles(root)
    manifest = files.manifest()
    problems: list[str] = []
    try:
        episodes = files.episodes().to_pydict()
    except ShardError as e:
        return [str(e)]
    for i, index in enumerate(episodes["episode_index"]):
        if index != i:
            problems.append(f"episodes.arrow row {i}: episode_index {index}, expected {i}")
    for shard_number, info in enumerate(progress(manifest.shards, "verify")):
        size = files.size(info.file)
        if size is None:
            problems.append(f"{info.file}: missing")
            continue
        if size != info.bytes:
            problems.append(f"{info.file}: {size} bytes, manifest says {info.bytes}")
        if files.sha256(info.file) != info.sha256:
            problems.append(f"{info.file}: sha256 differs from the manifest (file changed or corrupt)")
            continue
        table = files.index_columns(info.file)
        if table.num_rows != info.rows:
            problems.append(f"{info.file}: {table.num_rows} rows, manifest says {info.rows}")
        episode_column = table.column("episode_index").to_numpy()
        frame_column = table.column("frame_index").to_numpy()
        task_column = table.column("task_index").to_numpy()
        rows = [i for i, s in enumerate(episodes["shard"]) if s == shard_number]
        if len(rows) != info.episodes:
            problems.append(
                f"{info.file}: episodes.arrow lists {len(rows)} episodes, manifest says {info.episodes}"
            )
        for i in rows:
            start, length = episodes["row_offset"][i], episodes["length"][i]
            part = slice(start, start + length)
            if not np.all(episode_column[part] == episodes["episode_index"][i]):
                problems.append(
                    f"{info.file}: rows {start}..{start + length - 1} are not all episode {episodes['episode_index'][i]}"
                )
            if not np.array_equal(frame_column[part], np.arange(length)):
                problems.append(
                    f"{info.file}: frame_index of episode {episodes['episode_index'][i]} is not 0..{length - 1}"
                )
            if not np.all(task_column[part] == episodes["task_index"][i]):
                problems.append(
                    f"{info.file}: task_index of episode {episodes['episode_index'][i]} disagrees with episodes.arrow"
                )
    if any(t >= len(manifest.tasks) for t in episodes["task_index"]):
        problems.append("episodes.arrow: a task_index points past the manifest's task list")
    if deep and not problems:
        from vla_data.shards.verify_frames import verify_frames

        problems += verify_frames(files.root, manifest)
    return problems


INDEX_COLUMNS = ["episode_index", "frame_index", "task_index"]


class _LocalFiles:
    def __init__(self, root: str | Path):
        self.root = Path(local_path(root))

    def manifest(self) -> Manifest:
        return load_manifest(self.root)

    def episodes(self) -> pa.Table:
        return open_arrow_file(self.root / EPISODES_FILE)

    def size(self, name: str) -> int | None:
        path = self.root / name
        return path.stat().st_size if path.exists() else None

    def sha256(self, name: str) -> str:
        return sha256_file(self.root / name)

    def index_columns(self, name: str) -> pa.Table:
        return open_arrow_file(self.root / name)


class _StoreFiles:
    def __init__(self, root: str, storage_options: dict[str, Any] | None):
        self.fs, self.root = remote_filesystem(root, storage_options)

    def manifest(self) -> Manifest:
        return read_manifest(self.fs, self.root)

    def episodes(self) -> pa.Table:
        try:
            return pa.ipc.open_file(
                pa.py_buffer(read_bytes(self.fs, f"{self.root}/{EPISODES_FILE}"))
            ).read_all()
        except (FileNotFoundError, pa.ArrowInvalid) as e:
            raise ShardError(f"{EPISODES_FILE}: cannot be read ({e})") from e

    def size(self, name: str) -> int | None:
        info = self.fs.get_file_info(f"{self.root}/{name}")
        return info.size if info.type == pafs.FileType.File else None

    def sha256(self, name: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open_input_stream(f"{self.root}/{name}") as f:
            while block := f.read(1 << 24):
                digest.update(block)
        return digest.hexdigest()

    def index_columns(self, name: str) -> pa.Table:
        with self.fs.open_input_file(f"{self.root}/{name}") as f:
            schema = pa.ipc.open_file(f).schema
            fields = [schema.get_field_index(c) for c in INDEX_COLUMNS]
            return pa.ipc.open_file(f, options=pa.ipc.IpcReadOptions(included_fields=fields)).read_all()
