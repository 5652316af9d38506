"""Synthetic sample datasets in each source format, written with the formats' own layouts.

They feed the demo, the benchmarks and the tests; every writer is deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CAMERAS = ("cam_high", "cam_left_wrist")
TASKS = ("pick up the cube", "push the cube to the left", "lift the cube and put it down")


def render_frames(positions: np.ndarray, height: int, width: int, color: tuple[int, int, int]) -> np.ndarray:
    """uint8 `[T, H, W, 3]`: a gradient background with a square centred at `positions` [T, 2] in [-1, 1]."""
    ys, xs = np.mgrid[0:height, 0:width]
    background = np.stack(
        [xs * 255 // max(width - 1, 1), ys * 255 // max(height - 1, 1), np.full_like(xs, 64)], -1
    )
    frames = np.broadcast_to(background.astype(np.uint8), (len(positions), height, width, 3)).copy()
    side = max(height, width) // 8
    centres = np.stack([(positions[:, 1] + 1) / 2 * (height - 1), (positions[:, 0] + 1) / 2 * (width - 1)], 1)
    for frame, (cy, cx) in zip(frames, centres.astype(int), strict=True):
        frame[max(cy - side, 0) : cy + side, max(cx - side, 0) : cx + side] = color
    return frames


def write_aloha_episode(
    path: Path, seed: int, steps: int, height: int, width: int, *, compression: str | None = None
) -> None:
    """One ALOHA-layout episode file: 14-dim qpos/qvel/action, two cameras that follow the motion."""
    import h5py

    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, steps)[:, None]
    freq = rng.uniform(0.5, 2.0, 14)
    phase = rng.uniform(0, 2 * np.pi, 14)
    amplitude = rng.uniform(0.2, 0.8, 14)
    qpos = amplitude * np.sin(2 * np.pi * freq * t + phase)  # [T, 14]
    qvel = np.gradient(qpos, axis=0) * steps
    action = np.concatenate([qpos[1:], qpos[-1:]], axis=0)
    with h5py.File(path, "w") as f:
        f.attrs["sim"] = True
        f.create_dataset("action", data=action)
        obs = f.create_group("observations")
        obs.create_dataset("qpos", data=qpos)
        obs.create_dataset("qvel", data=qvel)
        images = obs.create_group("images")
        images.create_dataset(
            CAMERAS[0], data=render_frames(qpos[:, :2], height, width, (220, 40, 40)), compression=compression
        )
        images.create_dataset(
            CAMERAS[1],
            data=render_frames(qpos[:, 7:9], height, width, (40, 200, 60)),
            compression=compression,
        )


def write_aloha_sample(
    folder: str | Path, *, episodes: int = 6, steps: int = 120, height: int = 96, width: int = 128
) -> list[Path]:
    """A deterministic ALOHA-layout sample: `episodes` files `episode_N.hdf5`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(episodes):
        path = folder / f"episode_{i}.hdf5"
        write_aloha_episode(path, seed=i, steps=steps, height=height, width=width)
        paths.append(path)
    return paths


TFDS_CLASS = "tensorflow_datasets.core.features."


def tfds_tensor(dims: list[int], dtype: str = "float32", *, kind: str = "tensor_feature.Tensor") -> dict:
    """A features.json Tensor node (`kind` lets tests write unknown feature types)."""
    shape = {"dimensions": [str(d) for d in dims]}
    return {
        "pythonClassName": TFDS_CLASS + kind,
        "tensor": {"dtype": dtype, "encoding": "none", "shape": shape},
    }


def tfds_image(height: int, width: int, encoding: str = "jpeg") -> dict:
    shape = {"dimensions": [str(height), str(width), "3"]}
    return {
        "pythonClassName": TFDS_CLASS + "image_feature.Image",
        "image": {"dtype": "uint8", "encodingFormat": encoding, "shape": shape},
    }


def tfds_text() -> dict:
    return {"pythonClassName": TFDS_CLASS + "text_feature.Text", "text": {}}


def tfds_dict(features: dict) -> dict:
    return {
        "pythonClassName": TFDS_CLASS + "features_dict.FeaturesDict",
        "featuresDict": {"features": features},
    }


def tfds_steps(step: dict) -> dict:
    return {
        "pythonClassName": TFDS_CLASS + "dataset_feature.Dataset",
        "sequence": {"feature": tfds_dict(step), "length": "-1"},
    }


def write_tfds(
    folder: Path,
    name: str,
    features: dict,
    shards: list[list[dict]],
    *,
    split: str = "train",
    compress: bool = False,
) -> None:
    """A TFDS version folder: features.json, dataset_info.json and one TFRecord file per shard,
    each record a `tf.train.Example` of flattened features (`steps/observation/image`, ...)."""
    from vla_data.sources.example import encode_example
    from vla_data.sources.tfrecord import write_records

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "features.json").write_text(json.dumps(tfds_dict(features)))
    template = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    info = {
        "name": name,
        "fileFormat": "tfrecord",
        "splits": [
            {"name": split, "filepathTemplate": template, "shardLengths": [str(len(s)) for s in shards]}
        ],
    }
    (folder / "dataset_info.json").write_text(json.dumps(info))
    for index, records in enumerate(shards):
        path = folder / f"{name}-{split}.tfrecord-{index:05d}-of-{len(shards):05d}"
        write_records(str(path), [encode_example(r) for r in records], compress=compress)


def write_rlds_sample(
    folder: Path,
    *,
    episodes: int,
    steps: int,
    image_size: tuple[int, int],
    shards: int = 4,
    compress: bool = False,
) -> None:
    """A TFDS-layout RLDS dataset (Open X-Embodiment style features, two JPEG cameras); `compress`
    writes GZIP TFRecords."""
    from vla_data.images import encode_image

    observation = tfds_dict(
        {"state": tfds_tensor([7]), "image": tfds_image(*image_size), "wrist_image": tfds_image(*image_size)}
    )
    step = {
        "action": tfds_tensor([7]),
        "reward": tfds_tensor([]),
        "is_first": tfds_tensor([], "bool"),
        "is_last": tfds_tensor([], "bool"),
        "observation": observation,
    }
    rng = np.random.default_rng(0)
    records = []
    for _ in range(episodes):
        state = np.cumsum(rng.normal(0, 0.05, (steps, 7)), axis=0).clip(-1, 1)
        frames = [render_frames(state[:, k : k + 2], *image_size, (200, 50 * k, 40)) for k in (0, 2)]
        records.append(
            {
                "steps/action": state.astype(np.float32),
                "steps/reward": np.zeros(steps, np.float32),
                "steps/is_first": np.arange(steps) == 0,
                "steps/is_last": np.arange(steps) == steps - 1,
                "steps/observation/state": state.astype(np.float32),
                "steps/observation/image": [encode_image(f, "jpeg", 90) for f in frames[0]],
                "steps/observation/wrist_image": [encode_image(f, "jpeg", 90) for f in frames[1]],
            }
        )
    parts = np.array_split(np.arange(episodes), shards)
    write_tfds(
        folder,
        "bench",
        {"steps": tfds_steps(step)},
        [[records[i] for i in part] for part in parts],
        compress=compress,
    )


def write_lerobot_video_sample(
    root: str | Path,
    *,
    episodes: int = 2,
    steps: int = 20,
    height: int = 32,
    width: int = 48,
    fps: int = 10,
    video_frames: int | None = None,
) -> dict[int, np.ndarray]:
    """A LeRobot v2.1 dataset with one H.264 camera `observation.images.front`; returns the frames
    written per episode. `video_frames` < `steps` makes videos shorter than the data."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vla_data.sources.video import write_video

    root = Path(root)
    rng = np.random.default_rng(0)
    (root / "meta").mkdir(parents=True)
    features = {
        "action": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]},
        "observation.state": {"dtype": "float32", "shape": [3], "names": None},
        "observation.images.front": {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
        },
        **{
            k: {"dtype": "int64", "shape": [1], "names": None}
            for k in ("frame_index", "episode_index", "index", "task_index")
        },
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    }
    info = {
        "codebase_version": "v2.1",
        "fps": fps,
        "chunks_size": 1000,
        "features": features,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
    }
    (root / "meta" / "info.json").write_text(json.dumps(info))
    (root / "meta" / "tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "stack"}) + "\n")
    lines = [
        json.dumps({"episode_index": e, "tasks": ["stack"], "length": steps}) + "\n" for e in range(episodes)
    ]
    (root / "meta" / "episodes.jsonl").write_text("".join(lines))
    (root / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
    (root / "videos" / "chunk-000" / "observation.images.front").mkdir(parents=True, exist_ok=True)
    frames = {}
    for e in range(episodes):
        state = np.cumsum(rng.normal(0, 0.05, (steps, 3)), axis=0).astype(np.float32)
        table = pa.table(
            {
                "action": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.roll(state, -1, axis=0).reshape(-1)), 3
                ),
                "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1)), 3),
                "timestamp": pa.array(np.arange(steps, dtype=np.float32) / fps),
                "frame_index": pa.array(np.arange(steps)),
                "episode_index": pa.array(np.full(steps, e)),
                "index": pa.array(np.arange(steps) + e * steps),
                "task_index": pa.array(np.zeros(steps, np.int64)),
            }
        )
        pq.write_table(table, root / "data" / "chunk-000" / f"episode_{e:06d}.parquet")
        count = video_frames or steps
        video = render_frames(
            np.clip(np.resize(state[:, :2], (count, 2)), -1, 1), height, width, (230, 60, 40)
        )
        bar = (
            np.arange(width)[None, :] < (4 * (np.arange(count) + 1) % width)[:, None]
        )  # [T, W], grows per frame
        video[:, :6][np.broadcast_to(bar[:, None, :], (count, 6, width))] = 255
        frames[e] = video
        write_video(
            str(root / "videos" / "chunk-000" / "observation.images.front" / f"episode_{e:06d}.mp4"),
            video,
            fps,
        )
    return frames


def write_lerobot_v30_sample(
    root: str | Path,
    *,
    episodes: int = 8,
    steps: int = 20,
    episodes_per_file: int = 4,
    row_group_rows: int | None = None,
    fps: int = 10,
) -> Path:
    """A parquet-only LeRobot v3.0 dataset whose data files hold `episodes_per_file` episodes each
    (as `lerobot` writes them: one row group per episode, or `row_group_rows` rows per row group).
    Action and state of episode e, step t are `e + t / 1000` in every dimension."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (root / "data" / "chunk-000").mkdir(parents=True)
    features = {
        "action": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]},
        "observation.state": {"dtype": "float32", "shape": [3], "names": None},
        **{
            k: {"dtype": "int64", "shape": [1], "names": None}
            for k in ("frame_index", "episode_index", "index", "task_index")
        },
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    }
    info = {
        "codebase_version": "v3.0",
        "fps": fps,
        "features": features,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": None,
    }
    (root / "meta" / "info.json").write_text(json.dumps(info))
    pq.write_table(pa.table({"task_index": [0, 1], "task": list(TASKS[:2])}), root / "meta" / "tasks.parquet")
    table_rows = []
    for first in range(0, episodes, episodes_per_file):
        file_index = first // episodes_per_file
        tables = []
        for e in range(first, min(first + episodes_per_file, episodes)):
            values = np.repeat((e + np.arange(steps) / 1000).astype(np.float32)[:, None], 3, axis=1)
            flat = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), 3)
            tables.append(
                pa.table(
                    {
                        "action": flat,
                        "observation.state": flat,
                        "timestamp": pa.array(np.arange(steps, dtype=np.float32) / fps),
                        "frame_index": pa.array(np.arange(steps)),
                        "episode_index": pa.array(np.full(steps, e)),
                        "index": pa.array(np.arange(steps) + e * steps),
                        "task_index": pa.array(np.full(steps, e % 2)),
                    }
                )
            )
            table_rows.append(
                {
                    "episode_index": e,
                    "length": steps,
                    "data/chunk_index": 0,
                    "data/file_index": file_index,
                    "dataset_from_index": e * steps,
                    "dataset_to_index": (e + 1) * steps,
                }
            )
        path = root / "data" / "chunk-000" / f"file-{file_index:03d}.parquet"
        if row_group_rows is None:
            with pq.ParquetWriter(path, tables[0].schema) as writer:
                for table in tables:
                    writer.write_table(table)
        else:
            pq.write_table(pa.concat_tables(tables), path, row_group_size=row_group_rows)
    pq.write_table(
        pa.Table.from_pylist(table_rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    )
    return root


SHAPES = ("square", "circle", "triangle")
COLORS = {"red": (220, 40, 40), "green": (40, 190, 70), "blue": (50, 80, 220), "yellow": (230, 210, 40)}


def render_shape(shape: str, color: tuple[int, int, int], size: int, rng: np.random.Generator) -> np.ndarray:
    """A uint8 `[size, size, 3]` image: one filled shape on a grey background."""
    image = np.full((size, size, 3), 200, np.uint8)
    ys, xs = np.mgrid[0:size, 0:size]
    r = size // 4
    cy, cx = rng.integers(r, size - r, 2)
    if shape == "square":
        inside = (abs(ys - cy) <= r * 0.8) & (abs(xs - cx) <= r * 0.8)
    elif shape == "circle":
        inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= r**2
    else:
        inside = (ys - cy + r >= 0) & (ys - cy <= r) & (abs(xs - cx) <= (ys - cy + r) / 2)
    image[inside] = color
    return image


def write_web_sample(folder: str | Path, *, samples: int = 60, size: int = 64, seed: int = 0) -> Path:
    """Rendered shapes with true captions and VQA pairs: `samples.jsonl` + `images/*.png`."""
    from vla_data.images import encode_image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(samples):
        shape = SHAPES[rng.integers(len(SHAPES))]
        color_name = list(COLORS)[rng.integers(len(COLORS))]
        name = f"images/{i:05d}.png"
        (folder / name).write_bytes(encode_image(render_shape(shape, COLORS[color_name], size, rng), "png"))
        if i % 2 == 0:
            row = {
                "image": name,
                "question": "",
                "answer": f"a {color_name} {shape} on a grey background",
                "kind": "caption",
            }
        else:
            question = "what shape is shown?" if i % 4 == 1 else "what color is the shape?"
            row = {
                "image": name,
                "question": question,
                "answer": shape if i % 4 == 1 else color_name,
                "kind": "vqa",
            }
        lines.append(json.dumps(row))
    (folder / "samples.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "samples.jsonl"
