"""Robot samples a whole batch at a time: the values of `RobotDataset.sample` for every row, written
straight into the batch buffer (`BatchArrays`) with no per-sample dicts.

Per dataset of the source: steps are located with one `searchsorted`, action chunks gathered from
the cached episode arrays into one `[n, H, Da]` array and normalized in one call, FAST ids sliced
from the cache (or encoded in one batch call), states discretized and prompts encoded in one call,
and frames decoded straight into their batch rows (`batch_images`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .batch_images import fill_images
from .collate import BatchArrays
from .stage_timer import NO_TIMER, StageTimer, _NoTimer

if TYPE_CHECKING:
    from .robot import RobotDataset


def fill_robot_rows(
    robot: RobotDataset,
    batch: BatchArrays,
    rows: np.ndarray,
    indices: np.ndarray,
    timer: StageTimer | _NoTimer = NO_TIMER,
) -> None:
    """Rows `rows` of `batch` := the samples at global steps `indices` of `robot`."""
    dataset_of = np.searchsorted(robot.offsets, indices, side="right") - 1
    for d in sorted(set(dataset_of.tolist())):
        mine = dataset_of == d
        ds = robot.datasets[d]
        ds.check_pages()  # the episode caches keep views of mapped rows: bound their pages per batch
        if ds.remote and ds.cache is None:  # no shard cache: each sample fetches only its rows
            for b, index in zip(rows[mine].tolist(), indices[mine].tolist(), strict=True):
                batch.put_sample(b, robot.sample(index))
            continue
        _fill_dataset(robot, d, batch, rows[mine], indices[mine] - robot.offsets[d], timer)


def _fill_dataset(
    robot: RobotDataset,
    d: int,
    batch: BatchArrays,
    rows: np.ndarray,
    local: np.ndarray,
    timer: StageTimer | _NoTimer,
) -> None:
    ds, config = robot.datasets[d], robot.config
    if len(local) and not (0 <= local.min() and local.max() < len(ds)):
        raise IndexError(f"steps {local.min()}..{local.max()} out of range (dataset has {len(ds)})")
    episodes = np.searchsorted(ds.episode_start, local, side="right") - 1
    starts = local - ds.episode_start[episodes]  # each sample's step in its episode
    episode_list, start_list = episodes.tolist(), starts.tolist()
    timer.mark("locate")
    arrays = [robot.episode_arrays(d, e) for e in episode_list]  # cached per episode
    timer.mark("read")

    H = config.horizon
    steps = starts[:, None] + np.arange(H)  # [n, H], as chunk_indices
    lengths = ds.episode_length[episodes][:, None]
    chunk_rows, is_pad = np.minimum(steps, lengths - 1), steps >= lengths
    # [n, H, Da]: a slice where the chunk fits the episode, clamped rows at its end
    chunk_list = [
        episode_actions[t : t + H] if t + H <= length else episode_actions[chunk_rows[i]]
        for i, ((episode_actions, _), t, length) in enumerate(
            zip(arrays, start_list, lengths[:, 0].tolist(), strict=True)
        )
    ]
    actions = np.concatenate(chunk_list, dtype=np.float64).reshape(len(local), H, -1)
    has_state = arrays[0][1] is not None
    state = (
        np.concatenate([s[t : t + 1] for (_, s), t in zip(arrays, start_list, strict=True)])
        if has_state
        else None
    )
    if config.delta_action_dims:
        from .chunks import delta_chunk

        actions = delta_chunk(actions, state, config.delta_action_dims)
    chunks = robot.action_norm[d].normalize(actions)  # [n, H, Da] float64
    norm_state = robot.state_norm[d].normalize(state) if has_state else None  # [n, S]
    a = batch.arrays
    dims = chunks.shape[-1]
    at = _rows(rows)
    a["actions"][at, :H, :dims] = chunks  # float32, as the sample's `chunk.astype(np.float32)`
    a["action_is_pad"][at, :H] = is_pad
    a["action_is_pad"][at, H:] = True  # a source horizon shorter than the model's
    a["action_dim_mask"][at, :dims] = True
    if has_state:
        a["state"][at, : norm_state.shape[-1]] = norm_state
    a["has_actions"][at] = True
    timer.mark("normalize")

    if robot.cache_paths[d] is None:
        ids = [np.asarray(x, np.int64) for x in robot.fast.encode(chunks, on_error="clip")]
    else:
        ids = robot.id_lists(d).rows(local)
    timer.mark("FAST ids")

    tasks = [robot.task(d, e) for e in episode_list]
    layout = robot.prompt.robot_batch(tasks, norm_state, ids)
    batch.put_token_rows(rows, layout, lambda i: f"{ds.root} episode {episode_list[i]} step {start_list[i]}")
    timer.mark("prompt")

    dropped = fill_images(robot, d, batch, rows, at, episode_list, start_list)
    if "images_dropped" in a:
        a["images_dropped"][at] = dropped
    timer.mark("image decode")


def _rows(rows: np.ndarray) -> slice | np.ndarray:
    """Batch rows as a slice when consecutive (a robot-only batch: all of them), where numpy
    copies whole blocks instead of gathering row by row."""
    first, last = int(rows[0]), int(rows[-1])
    return slice(first, last + 1) if last - first + 1 == len(rows) else rows
