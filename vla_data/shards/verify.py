"""`verify`: recheck a converted dataset against its manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla_data.errors import ShardError
from vla_data.progress import progress
from vla_data.shards.manifest import EPISODES_FILE, load_manifest
from vla_data.shards.reader import open_arrow_file
from vla_data.shards.writer import sha256_file


def verify_dataset(root: str | Path, *, deep: bool = False) -> list[str]:
    """Every problem found, as one message each; an empty list means the dataset is intact.

    Checks each shard's presence, size and sha256, its row and episode counts, and that
    `episodes.arrow` and the step columns agree (episode indices, frame indices 0..T-1, tasks).
    `deep` also decodes every stored frame (`verify_frames`), once the shards are known intact.
    """
    root = Path(root)
    manifest = load_manifest(root)
    problems: list[str] = []
    try:
        episodes = open_arrow_file(root / EPISODES_FILE).to_pydict()
    except ShardError as e:
        return [str(e)]
    for i, index in enumerate(episodes["episode_index"]):
        if index != i:
            problems.append(f"episodes.arrow row {i}: episode_index {index}, expected {i}")
    for shard_number, info in enumerate(progress(manifest.shards, "verify")):
        path = root / info.file
        if not path.exists():
            problems.append(f"{info.file}: missing")
            continue
        if path.stat().st_size != info.bytes:
            problems.append(f"{info.file}: {path.stat().st_size} bytes, manifest says {info.bytes}")
        if sha256_file(path) != info.sha256:
            problems.append(f"{info.file}: sha256 differs from the manifest (file changed or corrupt)")
            continue
        table = open_arrow_file(path)
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

        problems += verify_frames(root, manifest)
    return problems
