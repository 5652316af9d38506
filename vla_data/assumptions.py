"""Values a conversion would otherwise assume silently: each one becomes a warning line (or, for the
RLDS frame rate, a required option), so nothing that changes the training data goes unnoticed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FPS_KEYS = ("fps", "control_frequency", "control_freq", "frequency_hz")


def recorded_rlds_fps(root: str | Path) -> float | None:
    """The frame rate a TFDS `dataset_info.json` records (top level or under `metadata`), if any."""
    try:
        info = json.loads((Path(root) / "dataset_info.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    for where in (info, info.get("metadata") or {}):
        for key in FPS_KEYS:
            if isinstance(where.get(key), (int, float)) and where[key] > 0:
                return float(where[key])
    return None


def hdf5_fps_warning(source: Any) -> str | None:
    """A warning when HDF5 episodes get the layout's default frame rate (no --fps, no control_freq
    in the first file's attributes)."""
    from vla_data.sources.hdf5 import DEFAULT_FPS, _open

    if source.fps is not None or not source.paths:
        return None
    first = source.paths[0]
    with _open(first) as f:
        attrs = f["data"].attrs if "data" in f else f.attrs
        env_args = json.loads(attrs["env_args"]) if "env_args" in attrs else {}
    if env_args.get("env_kwargs", {}).get("control_freq"):
        return None
    fps = DEFAULT_FPS[source.layout]
    return (
        f"warning: assuming {fps:g} fps (the {source.layout} layout's default; {first} records no "
        "control_freq); give --fps with the robot's control frequency"
    )


def empty_task_warning(out: str | Path) -> str | None:
    """A warning when converted episodes have an empty task: their prompts read `Task: ;`."""
    from vla_data.shards import ShardDataset

    ds = ShardDataset(out)
    empty = [i for i, task in enumerate(ds.manifest.tasks) if not task.strip()]
    count = int(sum((ds.episode_task == i).sum() for i in empty))
    if not count:
        return None
    return (
        f"warning: {count} of {ds.num_episodes} episodes have an empty task (no language instruction "
        "in the source): their prompts read 'Task: ;'. Convert again with --task \"...\""
    )
