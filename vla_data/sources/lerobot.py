"""LeRobot datasets, format v2.1 and v3.0, read from a local dataset root without `lerobot`.

v2.1: meta/info.json, meta/episodes.jsonl, meta/tasks.jsonl, one parquet per episode
      (`data_path`), one mp4 per episode and camera (`video_path`) or images in the parquet.
v3.0: meta/info.json, meta/episodes/chunk-*/file-*.parquet (episode -> data file, row range, per
      camera video file and from/to timestamps), meta/tasks.parquet, multi-episode data files and
      videos (frame time = from_timestamp + timestamp).
Images stored in parquet (`struct{bytes, path}`) are copied byte for byte; video frames are decoded
once with PyAV and encoded by the converter.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vla_data.episode import Episode
from vla_data.errors import SourceError
from vla_data.schema import ACTION, IMAGE_PREFIX, STATE
from vla_data.sources.parquet_rows import episode_rows
from vla_data.sources.video import VideoFrames
from vla_data.storage import local_path

SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")
INDEX_COLUMNS = {"timestamp", "frame_index", "episode_index", "index", "task_index"}
ACTION_CANDIDATES = ("action", "actions")
STATE_CANDIDATES = ("observation.state", "state")


def _names(feature: dict[str, Any], size: int) -> tuple[str, ...] | None:
    names = feature.get("names")
    if isinstance(names, dict):  # {"motors": [...]} in older datasets
        names = [n for group in names.values() for n in (group if isinstance(group, list) else [group])]
    if isinstance(names, list) and len(names) == size and all(isinstance(n, str) for n in names):
        return tuple(names)
    return None


@dataclass(frozen=True)
class LeRobotSource:
    root: str
    action_key: str | None = None
    state_key: str | None = None
    cameras: tuple[tuple[str, str], ...] = ()  # (feature key, camera name); empty: every image/video feature
    drop_cameras: tuple[str, ...] = ()
    tolerance: float | None = None  # seconds; default half a frame period

    @classmethod
    def from_path(cls, root: str | Path, **options: Any) -> LeRobotSource:
        cameras = options.pop("cameras", None) or {}
        return cls(root=str(local_path(root, what="source")), cameras=tuple(dict(cameras).items()), **options)

    def describe(self) -> dict[str, Any]:
        return {
            "format": "lerobot",
            "path": self.root,
            "options": {
                "action_key": self.action_key,
                "state_key": self.state_key,
                "cameras": dict(self.cameras),
                "drop_cameras": list(self.drop_cameras),
                "tolerance": self.tolerance,
            },
        }

    # -- metadata --------------------------------------------------------------------------------
    def _path(self, relative: str) -> Path:
        return Path(self.root) / relative

    def info(self) -> dict[str, Any]:
        path = self._path("meta/info.json")
        if not path.exists():
            raise SourceError("missing meta/info.json: not a LeRobot dataset root", file=str(path))
        info = json.loads(path.read_text())
        version = info.get("codebase_version")
        if version not in SUPPORTED_VERSIONS:
            raise SourceError(
                f"codebase_version {version!r} is not supported; supported: {', '.join(SUPPORTED_VERSIONS)}",
                file=str(path),
                key="codebase_version",
            )
        return info

    def roles(self, info: dict[str, Any]) -> dict[str, Any]:
        features = info["features"]
        info_path = str(self._path("meta/info.json"))

        def pick(explicit: str | None, candidates: tuple[str, ...], what: str) -> str | None:
            if explicit is not None:
                if explicit not in features:
                    raise SourceError(
                        f"--{what}-key {explicit!r} is not a feature; info.json has {sorted(features)}",
                        file=info_path,
                        key=explicit,
                    )
                return explicit
            return next((c for c in candidates if c in features), None)

        action = pick(self.action_key, ACTION_CANDIDATES, "action")
        if action is None:
            raise SourceError(
                f"no action feature (looked for {ACTION_CANDIDATES}); name it with --action-key",
                file=info_path,
            )
        state = pick(self.state_key, STATE_CANDIDATES, "state")
        visual = [k for k, f in features.items() if f.get("dtype") in ("image", "video")]
        if self.cameras:
            unknown = [k for k, _ in self.cameras if k not in visual]
            if unknown:
                raise SourceError(
                    f"--camera {unknown[0]!r} is not an image/video feature; cameras: {visual}",
                    file=info_path,
                    key=unknown[0],
                )
            cameras = dict(self.cameras)
        else:
            cameras = {k: k[len(IMAGE_PREFIX) :] if k.startswith(IMAGE_PREFIX) else k for k in visual}
        if unknown := [k for k in self.drop_cameras if k not in visual]:
            raise SourceError(
                f"--drop-camera {unknown[0]!r} is not an image/video feature; cameras: {visual}",
                file=info_path,
                key=unknown[0],
            )
        cameras = {k: name for k, name in cameras.items() if k not in self.drop_cameras}
        arrays = {ACTION: action}
        if state:
            arrays[STATE] = state
        for key in features:
            if key in INDEX_COLUMNS or key in visual or key in (action, state):
                continue
            arrays[key] = key
        return {
            "arrays": arrays,
            "cameras": cameras,
            "video": {k for k in cameras if features[k]["dtype"] == "video"},
        }

    def tasks(self, info: dict[str, Any]) -> dict[int, str]:
        if info["codebase_version"] == "v3.0":
            path = self._path("meta/tasks.parquet")
            if not path.exists():
                raise SourceError("missing tasks table", file=str(path))
            table = pq.read_table(path)
            column = (
                "task" if "task" in table.column_names else "__index_level_0__"
            )  # lerobot <= 0.4 keeps it in the pandas index
            return dict(
                zip(table.column("task_index").to_pylist(), table.column(column).to_pylist(), strict=True)
            )
        path = self._path("meta/tasks.jsonl")
        if not path.exists():
            raise SourceError("missing tasks table", file=str(path))
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return {row["task_index"]: row["task"] for row in rows}

    def feature_names(self) -> dict[str, tuple[str, ...]]:
        """Per-dimension names from info.json, under their canonical feature names."""
        info = self.info()
        out = {}
        for name, key in self.roles(info)["arrays"].items():
            feature = info["features"][key]
            names = _names(feature, int(np.prod(feature.get("shape", [1]))))
            if names:
                out[name] = names
        return out

    # -- listing ---------------------------------------------------------------------------------
    def episode_refs(self) -> list[dict[str, Any]]:
        info = self.info()
        roles = self.roles(info)
        self.tasks(info)  # fail before converting anything if the task table is missing
        return (
            self._refs_v30(info, roles) if info["codebase_version"] == "v3.0" else self._refs_v21(info, roles)
        )

    def _refs_v21(self, info: dict[str, Any], roles: dict[str, Any]) -> list[dict[str, Any]]:
        path = self._path("meta/episodes.jsonl")
        if not path.exists():
            raise SourceError("missing episode table", file=str(path))
        refs = []
        chunk_size = info.get("chunks_size", 1000)
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            index = row["episode_index"]
            chunk = index // chunk_size
            videos = {
                key: {
                    "file": info["video_path"].format(
                        episode_chunk=chunk, video_key=key, episode_index=index
                    ),
                    "from": 0.0,
                }
                for key in roles["video"]
            }
            refs.append(
                {
                    "file": info["data_path"].format(episode_chunk=chunk, episode_index=index),
                    "episode": index,
                    "length": row["length"],
                    "videos": videos,
                }
            )
        return refs

    def _refs_v30(self, info: dict[str, Any], roles: dict[str, Any]) -> list[dict[str, Any]]:
        files = sorted(self._path("meta/episodes").glob("chunk-*/file-*.parquet"))
        if not files:
            raise SourceError("no episode tables under meta/episodes/", file=str(self._path("meta/episodes")))
        wanted = ["episode_index", "length", "data/chunk_index", "data/file_index"]
        for key in roles["video"]:
            wanted += [
                f"videos/{key}/chunk_index",
                f"videos/{key}/file_index",
                f"videos/{key}/from_timestamp",
            ]
        # one list per column (not a dict per episode): only the columns needed, whatever stats the
        # episode table also holds
        ranges = ["dataset_from_index", "dataset_to_index"]
        columns: dict[str, list] = {name: [] for name in wanted + ranges}
        for file in files:
            names = pq.read_schema(file).names
            missing = [c for c in wanted if c not in names]
            if missing:
                raise SourceError("episode table lacks columns", file=str(file), key=missing[0])
            table = pq.read_table(file, columns=wanted + [c for c in ranges if c in names])
            for name, values in columns.items():
                values += table.column(name).to_pylist() if name in names else [None] * table.num_rows
        data_files: dict[tuple[int, int], str] = {}  # one path string per data file, shared by its episodes
        file_start: dict[tuple[int, int], int] = {}  # a data file holds consecutive episodes' rows
        chunks, file_indices, starts = (
            columns["data/chunk_index"],
            columns["data/file_index"],
            columns[ranges[0]],
        )
        for chunk, file_index, start in zip(chunks, file_indices, starts, strict=True):
            key = (chunk, file_index)
            if key not in data_files:
                data_files[key] = info["data_path"].format(chunk_index=chunk, file_index=file_index)
            if start is not None:
                file_start[key] = min(file_start.get(key, start), start)
        refs = []
        episodes = columns["episode_index"]
        for i in sorted(range(len(episodes)), key=episodes.__getitem__):
            key = (chunks[i], file_indices[i])
            videos = {
                video_key: {
                    "file": info["video_path"].format(
                        video_key=video_key,
                        chunk_index=columns[f"videos/{video_key}/chunk_index"][i],
                        file_index=columns[f"videos/{video_key}/file_index"][i],
                    ),
                    "from": float(columns[f"videos/{video_key}/from_timestamp"][i]),
                }
                for video_key in roles["video"]
            }
            ref = {
                "file": data_files[key],
                "episode": episodes[i],
                "length": columns["length"][i],
                "videos": videos,
            }
            start, stop = file_start.get(key), columns[ranges[1]][i]
            if start is not None and stop is not None and starts[i] is not None:
                ref["rows"] = [starts[i] - start, stop - start]
            refs.append(ref)
        return refs

    # -- reading ---------------------------------------------------------------------------------
    def _existing(self, relative: str, episode: int, key: str | None) -> str:
        path = self._path(relative)
        if path.exists():
            return str(path)
        # Some published datasets keep videos under video/ while info.json says videos/.
        parts = Path(relative).parts
        if parts and parts[0] == "videos" and self._path(str(Path("video", *parts[1:]))).exists():
            return str(self._path(str(Path("video", *parts[1:]))))
        hint = (
            f"; skip such episodes with --on-error skip, or convert without it with --drop-camera {key}"
            if key
            else ""
        )
        raise SourceError(
            f"file listed by the dataset metadata is missing{hint}", file=str(path), episode=episode, key=key
        )

    def read(self, ref: dict[str, Any]) -> Episode:
        info, roles, tasks = _metadata(self)
        episode = ref["episode"]
        data_file = self._existing(ref["file"], episode, None)
        table = episode_rows(data_file, episode, ref.get("rows"))
        length = table.num_rows
        if length != ref["length"]:
            raise SourceError(
                f"parquet has {length} rows, the episode table says {ref['length']}",
                file=data_file,
                episode=episode,
            )
        frame_index = table.column("frame_index").to_numpy()
        if not np.array_equal(frame_index, np.arange(length)):
            raise SourceError(
                "frame_index is not 0..length-1 in order", file=data_file, episode=episode, key="frame_index"
            )
        timestamps = table.column("timestamp").to_numpy().astype(np.float64)
        arrays = {name: _column(table, key, data_file, episode) for name, key in roles["arrays"].items()}
        task_index = (
            int(table.column("task_index")[0].as_py()) if "task_index" in table.column_names else None
        )
        task = tasks.get(task_index, "") if task_index is not None else ""
        images: dict[str, Any] = {}
        tolerance = self.tolerance if self.tolerance is not None else 0.5 / float(info["fps"])
        for key, camera in roles["cameras"].items():
            if key in roles["video"]:
                video = ref["videos"][key]
                path = self._existing(video["file"], episode, key)
                images[camera] = VideoFrames(path, video["from"] + timestamps, tolerance, str(episode), key)
            else:
                images[camera] = self._image_bytes(table, key, data_file, episode)
        result = Episode(
            index=0,
            task=task,
            fps=float(info["fps"]),
            arrays=arrays,
            images=images,
            source_ref={"file": data_file, "episode": episode},
            timestamps=timestamps,
            source_keys={
                **roles["arrays"],
                **{IMAGE_PREFIX + camera: key for key, camera in roles["cameras"].items()},
            },
        )
        result.validate()
        return result

    def _image_bytes(self, table: pa.Table, key: str, data_file: str, episode: int) -> list[bytes]:
        frames = []
        for step, item in enumerate(table.column(key).to_pylist()):
            data = item.get("bytes") if isinstance(item, dict) else None
            if data is None and isinstance(item, dict) and item.get("path"):
                path = self._path(item["path"])
                if not path.exists():
                    raise SourceError(
                        f"step {step}: image file {item['path']} is missing",
                        file=data_file,
                        episode=episode,
                        key=key,
                    )
                data = path.read_bytes()
            if not data:
                raise SourceError(f"step {step}: no image bytes", file=data_file, episode=episode, key=key)
            frames.append(data)
        return frames


@functools.lru_cache(maxsize=8)
def _metadata(source: LeRobotSource) -> tuple[dict[str, Any], dict[str, Any], dict[int, str]]:
    """info.json, column roles and the task table, read once per source and process, not per episode."""
    info = source.info()
    return info, source.roles(info), source.tasks(info)


def _column(table: pa.Table, key: str, data_file: str, episode: int) -> np.ndarray:
    if key not in table.column_names:
        raise SourceError(
            "column listed in info.json is missing from the parquet", file=data_file, episode=episode, key=key
        )
    column = table.column(key).combine_chunks()
    nested = pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type)
    step = _first_null_step(column, nested)
    if step is not None:
        raise SourceError(
            f"null value at step {step}; fill or drop it, or skip such episodes with --on-error skip",
            file=data_file,
            episode=episode,
            key=key,
        )
    if nested:
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            step = int(np.flatnonzero(lengths != lengths[0])[0])
            raise SourceError(
                f"step {step} holds {lengths[step]} values, step 0 holds {lengths[0]}",
                file=data_file,
                episode=episode,
                key=key,
            )
        return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
    return column.to_numpy(zero_copy_only=False)


def _first_null_step(column: pa.Array, nested: bool) -> int | None:
    """The first step whose value (or, in a list column, any element of it) is null."""
    if column.null_count:
        return int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
    if nested:
        flat = column.flatten()
        if flat.null_count:
            first = int(np.flatnonzero(flat.is_null().to_numpy(zero_copy_only=False))[0])
            return int(pc.list_parent_indices(column)[first].as_py())
    return None
