"""HDF5 episodes: ALOHA/ACT files, robomimic/LIBERO files, or a user mapping of dataset paths.

- `aloha`: one episode per file; `/action`, `/observations/qpos`, `/observations/qvel`,
  `/observations/images/<cam>` as uint8 `[T, H, W, 3]`.
- `robomimic`: `data/demo_N/{actions, obs/*, rewards, dones, states}`, demos in numeric order;
  cameras are the uint8 `[T, H, W, 3]` datasets under `obs/`; task from the `problem_info`
  (LIBERO) or `env_args` attributes of `data`.
- `map`: canonical name -> dataset path inside each episode group (`action=actions`,
  `observation.state=obs/qpos`, `observation.images.front=obs/front`).
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vla_data.episode import Episode
from vla_data.errors import SourceError
from vla_data.schema import ACTION, IMAGE_PREFIX, STATE
from vla_data.sources import natural_key
from vla_data.sources.hdf5_frames import BLOCK_BYTES, HDF5Frames
from vla_data.storage import local_path

Layout = Literal["aloha", "robomimic", "map"]

DEFAULT_FPS = {"aloha": 50.0, "robomimic": 20.0, "map": 10.0}
# Concatenated into observation.state, first complete set wins (robosuite/robomimic, then LIBERO).
ROBOMIMIC_STATE_KEYS = (
    ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"),
    ("ee_pos", "ee_ori", "gripper_states"),
    ("ee_states", "gripper_states"),
)
ROBOMIMIC_RENAMES = {"actions": ACTION, "rewards": "reward", "dones": "done", "states": "sim_state"}


def expand_paths(src: str | Path | list[str]) -> list[str]:
    """A file, a folder (its *.hdf5 / *.h5 files) or a glob -> sorted list of files."""
    sources = [src] if isinstance(src, (str, Path)) else list(src)
    files: list[str] = []
    for item in (str(local_path(s, what="source")) for s in sources):
        if os.path.isdir(item):
            files += [
                p
                for p in glob.glob(os.path.join(item, "**", "*"), recursive=True)
                if p.endswith((".hdf5", ".h5"))
            ]
        elif any(ch in item for ch in "*?["):
            files += glob.glob(item, recursive=True)
        elif os.path.exists(item):
            files.append(item)
        else:
            raise SourceError("no such file or folder", file=item)
    if not files:
        raise SourceError("no .hdf5/.h5 files found", file=", ".join(map(str, sources)))
    return sorted(set(files), key=natural_key)


def _listing(group, limit: int = 30) -> str:
    """The datasets under an HDF5 group, for errors that say what is there."""
    import h5py

    names: list[str] = []
    group.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    shown = ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
    return f"datasets here: {shown}" if names else "the group holds no datasets"


def _open(path: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise SourceError(
            f"cannot be opened as HDF5 ({e}); is it truncated or not an HDF5 file?", file=path
        ) from e


def _is_image(dataset) -> bool:
    return dataset.dtype == np.uint8 and dataset.ndim == 4 and dataset.shape[-1] == 3


def _camera_name(key: str) -> str:
    for suffix in ("_image", "_rgb"):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


@dataclass(frozen=True)
class HDF5Source:
    """Episodes from HDF5 files in one of the layouts above."""

    paths: tuple[str, ...]
    layout: Layout = "robomimic"
    mapping: tuple[tuple[str, str], ...] = ()
    task: str | None = None
    fps: float | None = None
    state_keys: tuple[str, ...] | None = None
    episode_glob: str | None = None  # map layout: which groups are episodes (default: auto)
    frame_block_bytes: int = BLOCK_BYTES  # raw camera frames read at a time (memory, not output)

    def __post_init__(self) -> None:
        if self.layout not in ("aloha", "robomimic", "map"):
            raise ValueError(f"unknown HDF5 layout {self.layout!r}; use aloha, robomimic or map")
        if self.layout == "map" and not any(name == ACTION for name, _ in self.mapping):
            raise ValueError("the map layout needs at least `--map action=<path>`")

    @classmethod
    def from_paths(cls, src: str | Path | list[str], **options: Any) -> HDF5Source:
        mapping = options.pop("mapping", None) or {}
        return cls(paths=tuple(expand_paths(src)), mapping=tuple(dict(mapping).items()), **options)

    def describe(self) -> dict[str, Any]:
        return {
            "format": "hdf5",
            "path": list(self.paths),
            "options": {
                "layout": self.layout,
                "mapping": dict(self.mapping),
                "task": self.task,
                "fps": self.fps,
                "state_keys": list(self.state_keys) if self.state_keys else None,
                "episode_glob": self.episode_glob,
            },
        }

    # -- listing ---------------------------------------------------------------------------------
    def episode_refs(self) -> list[dict[str, Any]]:
        refs: list[dict[str, Any]] = []
        for path in self.paths:
            try:
                with _open(path) as f:
                    refs += [{"file": path, "episode": group} for group in self._episode_groups(f, path)]
            except SourceError as e:
                refs.append({"file": path, "episode": None, "error": e.reason})
        return refs

    def _episode_groups(self, f, path: str) -> list[str]:
        if self.layout == "aloha":
            return ["/"]
        if self.layout == "robomimic":
            if "data" not in f:
                hint = (
                    "--layout aloha" if "observations" in f and "action" in f else "--layout map with --map"
                )
                raise SourceError(
                    f"no 'data' group: not a robomimic/LIBERO file (try {hint})", file=path, key="data"
                )
            return [f"data/{name}" for name in sorted(f["data"].keys(), key=natural_key)]
        import fnmatch

        action_path = dict(self.mapping)[ACTION]
        for parent in ("data", "/"):
            if parent not in f:
                continue
            names = sorted(f[parent].keys(), key=natural_key)
            if self.episode_glob:
                names = [n for n in names if fnmatch.fnmatch(n, self.episode_glob)]
            groups = [
                f"{parent.strip('/')}/{n}".lstrip("/") for n in names if f"{n}/{action_path}" in f[parent]
            ]
            if groups:
                return groups
        return ["/"]

    # -- reading ---------------------------------------------------------------------------------
    def read(self, ref: dict[str, Any]) -> Episode:
        file, group_name = ref["file"], ref["episode"]
        if "error" in ref:
            raise SourceError(ref["error"], file=file)
        with _open(file) as f:
            group = f[group_name]
            if self.layout == "aloha":
                arrays, images = self._read_aloha(group, file)
            elif self.layout == "robomimic":
                arrays, images = self._read_robomimic(group, file, group_name)
            else:
                arrays, images = self._read_mapping(group, file, group_name)
            task, fps = self._task_and_fps(f)
        episode = Episode(
            source_keys=self._source_keys(arrays, images),
            index=0,
            task=task,
            fps=fps,
            arrays=arrays,
            images=images,
            source_ref={"file": file, "episode": group_name},
        )
        episode.validate()
        return episode

    def _source_keys(self, arrays: dict, images: dict) -> dict[str, str]:
        if self.layout == "map":
            return dict(self.mapping)
        if self.layout == "aloha":
            keys = {ACTION: "action", STATE: "observations/qpos", "observation.velocity": "observations/qvel"}
            keys.update({IMAGE_PREFIX + cam: f"observations/images/{cam}" for cam in images})
            return keys
        keys = {name: key for key, name in ROBOMIMIC_RENAMES.items()}
        keys.update(
            {name: f"obs/{name[len('observation.') :]}" for name in arrays if name.startswith("observation.")}
        )
        for state_set in (self.state_keys,) if self.state_keys else ROBOMIMIC_STATE_KEYS:
            if all(f"observation.{k}" in arrays for k in state_set):
                keys[STATE] = "+".join(f"obs/{k}" for k in state_set)
                break
        return keys

    def _dataset(self, group, path: str, file: str, episode: str):
        node = self._node(group, path, file, episode)
        try:
            return node[()]
        except (OSError, TypeError, ValueError) as e:
            hint = "; the file may be truncated" if isinstance(e, OSError) else ""
            raise SourceError(f"cannot read dataset ({e}){hint}", file=file, episode=episode, key=path) from e

    def _node(self, group, path: str, file: str, episode: str):
        """The h5py dataset at `path` (not read yet)."""
        if path not in group:
            raise SourceError(f"missing dataset; {_listing(group)}", file=file, episode=episode, key=path)
        node = group[path]
        if not hasattr(node, "dtype"):  # an h5py Group
            children = ", ".join(sorted(node.keys())[:5])
            raise SourceError(
                f"is a group, not a dataset (it holds {children or 'nothing'}); map a dataset inside it",
                file=file,
                episode=episode,
                key=path,
            )
        return node

    def _read_aloha(self, group, file: str):
        arrays = {
            ACTION: self._dataset(group, "action", file, "/"),
            STATE: self._dataset(group, "observations/qpos", file, "/"),
        }
        if "observations/qvel" in group:
            arrays["observation.velocity"] = self._dataset(group, "observations/qvel", file, "/")
        images = {}
        if "observations/images" in group:
            for cam in sorted(group["observations/images"].keys()):
                images[cam] = self._image_dataset(group, f"observations/images/{cam}", file, "/")
        return arrays, images

    def _image_dataset(self, group, path: str, file: str, episode: str) -> HDF5Frames | list[bytes]:
        """Raw uint8 `[T, H, W, 3]` frames (read in bounded blocks while encoding), or ACT's
        compressed layout: `[T, N]` uint8 rows each holding one JPEG zero-padded to the longest
        (copied without re-encoding)."""
        data = self._node(group, path, file, episode)
        if _is_image(data):
            return HDF5Frames.of(data, file, episode, self.frame_block_bytes)
        if data.dtype == np.uint8 and data.ndim == 2:
            data = self._dataset(group, path, file, episode)
            frames = []
            for step, row in enumerate(data):
                raw = row.tobytes()
                end = raw.rfind(b"\xff\xd9")
                if not raw.startswith(b"\xff\xd8") or end < 0:
                    raise SourceError(
                        f"step {step}: row is not a zero-padded JPEG", file=file, episode=episode, key=path
                    )
                frames.append(raw[: end + 2])
            return frames
        raise SourceError(
            f"expected uint8 [T, H, W, 3] frames or [T, N] padded JPEG rows, found {data.dtype} {data.shape}",
            file=file,
            episode=episode,
            key=path,
        )

    def _read_robomimic(self, group, file: str, episode: str):
        arrays: dict[str, np.ndarray] = {}
        images: dict[str, np.ndarray] = {}
        for key, name in ROBOMIMIC_RENAMES.items():
            if key in group:
                arrays[name] = self._dataset(group, key, file, episode)
        if ACTION not in arrays:
            raise SourceError(
                f"missing dataset; {_listing(group)}", file=file, episode=episode, key="actions"
            )
        obs = group["obs"] if "obs" in group else {}
        low_dim: dict[str, np.ndarray] = {}
        for key in sorted(obs.keys()) if obs else []:
            if _is_image(obs[key]):
                images[_camera_name(key)] = HDF5Frames.of(obs[key], file, episode, self.frame_block_bytes)
            else:
                low_dim[key] = self._dataset(group, f"obs/{key}", file, episode)
                arrays[f"observation.{key}"] = low_dim[key]
        state_sets = (self.state_keys,) if self.state_keys else ROBOMIMIC_STATE_KEYS
        for keys in state_sets:
            if all(k in low_dim for k in keys):
                for k in keys:
                    if len(low_dim[k]) != len(arrays[ACTION]):
                        raise SourceError(
                            f"has {len(low_dim[k])} steps but actions has {len(arrays[ACTION])} (ragged episode)",
                            file=file,
                            episode=episode,
                            key=f"obs/{k}",
                        )
                arrays[STATE] = np.concatenate(
                    [low_dim[k].reshape(len(low_dim[k]), -1) for k in keys], axis=1
                )
                break
            if self.state_keys:
                missing = [k for k in keys if k not in low_dim]
                raise SourceError(
                    "state key not found under obs/", file=file, episode=episode, key=f"obs/{missing[0]}"
                )
        return arrays, images

    def _read_mapping(self, group, file: str, episode: str):
        arrays: dict[str, np.ndarray] = {}
        images: dict[str, np.ndarray] = {}
        for name, path in self.mapping:
            if name.startswith(IMAGE_PREFIX):
                images[name[len(IMAGE_PREFIX) :]] = self._image_dataset(
                    group, path.lstrip("/"), file, episode
                )
            else:
                arrays[name] = self._dataset(group, path.lstrip("/"), file, episode)
        return arrays, images

    def _task_and_fps(self, f) -> tuple[str, float]:
        task, fps = "", None
        attrs = f["data"].attrs if "data" in f else f.attrs
        if "problem_info" in attrs:
            task = json.loads(attrs["problem_info"]).get("language_instruction", "")
        if "env_args" in attrs:
            env_args = json.loads(attrs["env_args"])
            task = task or env_args.get("env_name", "")
            fps = env_args.get("env_kwargs", {}).get("control_freq")
        if self.task is not None:
            task = self.task
        fps = self.fps or fps or DEFAULT_FPS[self.layout]
        return str(task).strip(), float(fps)
