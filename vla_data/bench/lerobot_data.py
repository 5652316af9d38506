"""A generated LeRobot v3.0 video dataset laid out as lerobot 0.4.4 writes it, for `bench lerobot`.

One data file (one row group per episode), one episodes file, `tasks.parquet` indexed by task
string, and per camera one MP4 holding every episode back to back, encoded the way
`lerobot.datasets.video_utils.encode_video_frames` does by default (libsvtav1, yuv420p, g=2, crf=30).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CAMERAS = ("observation.images.front", "observation.images.wrist")
TASKS = ("pick up the cube", "stack the cube on the plate")
COMPLETE = ".complete.json"  # written last: a folder without it is an interrupted generation
VERSION = 1  # of the generated content, recorded in COMPLETE: a reused dataset must match it


def _camera_frames(positions: np.ndarray, texture: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """uint8 `[T, H, W, 3]`: a fixed blocky texture with a square centred at `positions` in [-1, 1]."""
    height, width = texture.shape[:2]
    frames = np.broadcast_to(texture, (len(positions), height, width, 3)).copy()
    side = max(height, width) // 10
    rows = ((positions[:, 1] + 1) / 2 * (height - 1)).astype(int)
    cols = ((positions[:, 0] + 1) / 2 * (width - 1)).astype(int)
    for frame, cy, cx in zip(frames, rows, cols, strict=True):
        frame[max(cy - side, 0) : cy + side, max(cx - side, 0) : cx + side] = color
    return frames


def write_lerobot_v30_av1(
    root: str | Path,
    *,
    episodes: int = 20,
    steps: int = 300,
    height: int = 480,
    width: int = 640,
    fps: int = 30,
    dim: int = 14,
    codec: str = "libsvtav1",
) -> Path:
    """Write the dataset into `root` (which must not exist) and return it. Frames are encoded one
    camera at a time, `steps` frames per episode in memory at once."""
    import av
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    root.mkdir(parents=True)
    for folder in ("meta/episodes/chunk-000", "data/chunk-000", *(f"videos/{c}/chunk-000" for c in CAMERAS)):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    states = [  # each episode starts elsewhere, then a random walk
        (rng.uniform(-0.4, 0.4, dim) + np.cumsum(rng.normal(0, 0.02, (steps, dim)), axis=0)).astype(
            np.float32
        )
        for _ in range(episodes)
    ]
    video_info = {
        "video.height": height,
        "video.width": width,
        "video.codec": "av1" if "av1" in codec else codec,
        "video.pix_fmt": "yuv420p",
        "video.is_depth_map": False,
        "video.fps": fps,
        "video.channels": 3,
        "has_audio": False,
    }
    scalar = {"shape": [1], "names": None}
    features = {
        **{
            cam: {
                "dtype": "video",
                "shape": [height, width, 3],
                "names": ["height", "width", "channels"],
                "info": video_info,
            }
            for cam in CAMERAS
        },
        "observation.state": {"dtype": "float32", "shape": [dim], "names": [f"q{i}" for i in range(dim)]},
        "action": {"dtype": "float32", "shape": [dim], "names": [f"q{i}" for i in range(dim)]},
        "timestamp": {"dtype": "float32", **scalar},
        **{k: {"dtype": "int64", **scalar} for k in ("frame_index", "episode_index", "index", "task_index")},
    }
    info = {
        "codebase_version": "v3.0",
        "robot_type": "generated",
        "total_episodes": episodes,
        "total_frames": episodes * steps,
        "total_tasks": len(TASKS),
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500,
        "fps": fps,
        "splits": {"train": f"0:{episodes}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": features,
    }
    pd.DataFrame({"task_index": range(len(TASKS))}, index=list(TASKS)).to_parquet(
        root / "meta" / "tasks.parquet"
    )

    def fixed(values: np.ndarray) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), dim)

    with pq.ParquetWriter(root / "data" / "chunk-000" / "file-000.parquet", _data_schema(dim)) as writer:
        for e, state in enumerate(states):
            writer.write_table(
                pa.table(
                    {
                        "observation.state": fixed(state),
                        "action": fixed(np.roll(state, -1, axis=0)),
                        "timestamp": pa.array(np.arange(steps, dtype=np.float32) / fps),
                        "frame_index": pa.array(np.arange(steps)),
                        "episode_index": pa.array(np.full(steps, e)),
                        "index": pa.array(np.arange(steps) + e * steps),
                        "task_index": pa.array(np.full(steps, e % len(TASKS))),
                    },
                    schema=_data_schema(dim),
                )
            )
    for c, cam in enumerate(CAMERAS):
        texture = rng.integers(0, 160, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        texture = texture.repeat(16, 0).repeat(16, 1)[:height, :width]
        with av.open(str(root / "videos" / cam / "chunk-000" / "file-000.mp4"), "w") as container:
            stream = container.add_stream(codec, rate=fps, options={"g": "2", "crf": "30"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for state in states:
                positions = np.clip(state[:, 2 * c : 2 * c + 2] * 2, -1, 1)
                for array in _camera_frames(positions, texture, (230, 60 + 120 * c, 40)):
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
            container.mux(stream.encode())
    rows = []
    for e in range(episodes):
        row = {
            "episode_index": e,
            "tasks": [TASKS[e % len(TASKS)]],
            "length": steps,
            "data/chunk_index": 0,
            "data/file_index": 0,
            "dataset_from_index": e * steps,
            "dataset_to_index": (e + 1) * steps,
        }
        for cam in CAMERAS:
            row |= {
                f"videos/{cam}/chunk_index": 0,
                f"videos/{cam}/file_index": 0,
                f"videos/{cam}/from_timestamp": e * steps / fps,
                f"videos/{cam}/to_timestamp": (e + 1) * steps / fps,
            }
        rows.append(row | {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
    pq.write_table(pa.Table.from_pylist(rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    params = {
        "episodes": episodes,
        "steps": steps,
        "height": height,
        "width": width,
        "fps": fps,
        "codec": codec,
    }
    (root / COMPLETE).write_text(json.dumps(params | {"version": VERSION}))
    return root


def _data_schema(dim: int):
    import pyarrow as pa

    vector = pa.list_(pa.float32(), dim)
    return pa.schema(
        [("observation.state", vector), ("action", vector), ("timestamp", pa.float32())]
        + [(k, pa.int64()) for k in ("frame_index", "episode_index", "index", "task_index")]
    )


def generated_dataset(folder: str | Path, **params) -> Path:
    """The dataset for `params` under `folder`, generated on first use and reused afterwards; an
    interrupted generation (no completion marker) is an error naming the folder to delete."""
    p = {"episodes": 20, "steps": 300, "height": 480, "width": 640, "fps": 30, "codec": "libsvtav1"} | params
    root = Path(folder) / f"lerobot_v30_av1_{p['episodes']}x{p['steps']}_{p['height']}x{p['width']}"
    if (root / COMPLETE).exists() and json.loads((root / COMPLETE).read_text()) == p | {"version": VERSION}:
        return root
    if root.exists():
        raise FileExistsError(
            f"{root} holds an unfinished or different generated dataset (no matching {COMPLETE}); "
            "delete the folder and run again"
        )
    return write_lerobot_v30_av1(root, **p)
