"""Concatenate converted datasets: renumber episodes, merge task lists, recompute statistics.

Input shards are kept, not rewritten: each is linked (conversion units) or copied into place by
`place_shard`. Only when an input's episode or task numbers change in the merged dataset are those
two int columns patched in place (their Arrow buffers, a few bytes per row) and the shard rehashed;
a conversion unit numbers its episodes from where they land, so usually nothing changes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vla_data.errors import ShardError
from vla_data.progress import progress
from vla_data.shards.manifest import EPISODES_FILE, SHARD_DIR, Manifest, ShardInfo, load_manifest, shard_path
from vla_data.shards.reader import open_arrow_file
from vla_data.shards.writer import TaskIndex, commit_dataset, sha256_file
from vla_data.storage import is_local, is_uri, local_path

STAGING_DIR = ".units"  # conversion units live here until they are merged into OUT
PLACED = {"kept": 0, "patched": 0, "rewritten": 0, "hashed_bytes": 0}  # this process (tests, benchmarks)


def renumber(
    episodes: pa.Table, manifest: Manifest, tasks: TaskIndex, first_episode: int, first_shard: int
) -> tuple[list[dict[str, Any]], list[dict[str, np.ndarray]]]:
    """One input's episode rows renumbered for the merged dataset (episodes from `first_episode`,
    shards from `first_shard`, tasks through `tasks`), and per input shard the index columns that
    change (`{}` when the shard can be placed as it is)."""
    task_map = np.array([tasks.index(t) for t in manifest.tasks], dtype=np.int32)
    old = {name: episodes.column(name).to_numpy() for name in ("episode_index", "shard", "task_index")}
    lengths = episodes.column("length").to_numpy()
    new_episode = np.arange(first_episode, first_episode + episodes.num_rows)
    new_task = task_map[old["task_index"]]
    rows = [
        {**row, "episode_index": int(episode), "shard": row["shard"] + first_shard, "task_index": int(task)}
        for row, episode, task in zip(episodes.to_pylist(), new_episode, new_task, strict=True)
    ]
    shard_changes = []
    for s in range(len(manifest.shards)):
        mine = old["shard"] == s  # this shard's episodes, in row order
        changes = {}
        if not np.array_equal(old["episode_index"][mine], new_episode[mine]):
            changes["episode_index"] = np.repeat(new_episode[mine], lengths[mine]).astype(np.int64)
        if not np.array_equal(old["task_index"][mine], new_task[mine]):
            changes["task_index"] = np.repeat(new_task[mine], lengths[mine]).astype(np.int32)
        shard_changes.append(changes)
    return rows, shard_changes


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
    inputs: list[str | Path], out: str | Path, *, source: dict[str, Any] | None = None, link: bool = False
) -> Manifest:
    """Write one dataset at `out` holding every episode of `inputs`, in order.

    One output shard per input shard, placed by `place_shard` (`link=True` hard-links instead of
    copying: for inputs that are deleted afterwards, like conversion units). Statistics are
    recomputed from the merged shards, so they carry the usual quantile bound; `episodes.arrow` and
    `manifest.json` are written last.
    """
    if any(is_uri(p) and not is_local(p) for p in [*inputs, out]):
        from vla_data.object_store import merge_uris

        return merge_uris([str(p) for p in inputs], str(out), source=source)
    inputs = [local_path(p) for p in inputs]
    out = local_path(out)
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
        new_rows, shard_changes = renumber(
            open_arrow_file(root / EPISODES_FILE), manifest, tasks, len(rows), len(shards)
        )
        rows += new_rows
        compression = manifest.source.get("convert_options", {}).get("compression")
        for info, changes in zip(manifest.shards, shard_changes, strict=True):
            file = shard_path(len(shards))
            shards.append(
                place_shard(root / info.file, out, file, info, changes, link=link, compression=compression)
            )
    merged = Manifest(
        fps=first.fps,
        features=first.features,
        tasks=tasks.tasks,
        shards=shards,
        source=source or {"format": "merge", "inputs": [str(p) for p in inputs]},
        skipped=skipped,
    )
    return commit_dataset(out, merged, rows)


def place_shard(
    src: Path,
    out: Path,
    file: str,
    info: ShardInfo,
    changes: dict[str, np.ndarray],
    *,
    link: bool,
    compression: str | None = None,
) -> ShardInfo:
    """Put the shard `src` at `out / file` with new values (`[rows]` each) for the int columns in
    `changes`; returns its entry for the manifest (hashed again only when something changed).

    Unchanged shards are hard-linked (`link`) or copied byte for byte. Changed columns are patched
    in place in the uncompressed IPC buffers, which never touches image bytes; a compressed shard
    is rewritten. Patching writes absolute values, so placing a shard again gives the same bytes.
    """
    dst = out / file
    dst.unlink(missing_ok=True)
    if link and not changes:
        try:
            os.link(src, dst)
        except OSError:  # another filesystem, or no hard links
            shutil.copyfile(src, dst)
    else:
        shutil.copyfile(src, dst)  # a patched hard link would change the input too
    if not changes:
        PLACED["kept"] += 1
        return ShardInfo(
            file=file, rows=info.rows, episodes=info.episodes, bytes=info.bytes, sha256=info.sha256
        )
    if _patch_int_columns(dst, changes):
        PLACED["patched"] += 1
    else:
        _rewrite(dst, changes, compression)
        PLACED["rewritten"] += 1
    PLACED["hashed_bytes"] += dst.stat().st_size
    return ShardInfo(
        file=file, rows=info.rows, episodes=info.episodes, bytes=dst.stat().st_size, sha256=sha256_file(dst)
    )


def _patch_int_columns(path: Path, changes: dict[str, np.ndarray]) -> bool:
    """Overwrite the data buffers of fixed-width columns in an IPC file; False when a buffer is not
    stored as is in the file (compressed), so it cannot be patched."""
    writes = _buffer_writes(path, changes)
    if writes is None:
        return False
    with open(path, "r+b") as f:
        for offset, data in writes:
            f.seek(offset)
            f.write(data)
    return True


def _buffer_writes(path: Path, changes: dict[str, np.ndarray]) -> list[tuple[int, bytes]] | None:
    """(file offset, new bytes) of each changed column's data buffer in each record batch."""
    writes = []
    with pa.memory_map(str(path)) as source:
        whole = source.read_buffer(source.size())  # zero-copy: buffer addresses map to file offsets
        reader = pa.ipc.open_file(whole)
        row = 0
        for b in range(reader.num_record_batches):
            batch = reader.get_batch(b)
            for name, values in changes.items():
                column = batch.column(name)
                width = column.type.bit_width // 8
                address = column.buffers()[1].address + column.offset * width
                if not whole.address <= address <= whole.address + whole.size - width * len(column):
                    return None
                piece = values[row : row + len(column)].astype(column.type.to_pandas_dtype())
                writes.append((address - whole.address, piece.tobytes()))
            row += batch.num_rows
    return writes


def _rewrite(path: Path, changes: dict[str, np.ndarray], compression: str | None) -> None:
    table = open_arrow_file(path)
    for name, values in changes.items():
        index = table.schema.get_field_index(name)
        table = table.set_column(
            index, table.schema.field(name), pa.array(values, table.schema.field(name).type)
        )
    tmp = path.with_name(path.name + ".tmp")
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=options) as writer:
        for batch in table.to_batches():  # one record batch per episode, as the writer made them
            writer.write_batch(batch)
    del table
    os.replace(tmp, path)
