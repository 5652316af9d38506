"""RLDS datasets as TFDS writes them, read without TensorFlow.

SRC is a TFDS version folder: `dataset_info.json`, `features.json` and
`<name>-<split>.tfrecord-XXXXX-of-YYYYY` files, one `tf.train.Example` per episode with step
features flattened to `steps/<path>`. Encoded step images are copied byte for byte.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_data.episode import Episode
from vla_data.errors import SourceError
from vla_data.schema import ACTION, IMAGE_PREFIX, STATE
from vla_data.sources.example import ExampleError, parse_example
from vla_data.sources.tfds_features import Leaf, decode_leaves, parse_features
from vla_data.sources.tfrecord import read_record, record_offsets
from vla_data.storage import local_path

STEP_FLAGS = ("reward", "discount", "is_first", "is_last", "is_terminal")
STATE_CANDIDATES = ("steps/observation/state", "steps/observation/proprio")
TASK_CANDIDATES = ("steps/language_instruction", "episode_metadata/language_instruction")
# Small presets for known Open X-Embodiment layouts: paths left out of the default mapping.
PRESETS: dict[str, dict[str, Any]] = {
    "bridge": {"drop": ("steps/observation/image_3", "steps/language_embedding")},
}


def shard_files(root: Path, info: dict[str, Any], split: dict[str, Any]) -> list[Path]:
    """The shard files of one split, named by the split's `filepathTemplate`."""
    template = split.get("filepathTemplate", "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}")
    count = len(split.get("shardLengths", [])) or 1
    return [
        root
        / template.replace("{DATASET}", info["name"])
        .replace("{SPLIT}", split["name"])
        .replace("{FILEFORMAT}", info.get("fileFormat", "tfrecord"))
        .replace("{SHARD_X_OF_Y}", f"{i:05d}-of-{count:05d}")
        for i in range(count)
    ]


DEFAULT_FPS = 10.0  # only with a warning: RLDS rarely records its control frequency


@dataclass(frozen=True)
class RLDSSource:
    root: str
    splits: tuple[str, ...] = ()  # empty: every split, in dataset_info order
    mapping: tuple[tuple[str, str], ...] = ()  # canonical name -> TFDS path, overriding defaults
    action_keys: tuple[str, ...] = ()  # TFDS paths concatenated into `action`, in this order
    preset: str | None = None
    fps: float | None = None  # None: what dataset_info.json records, else 10 with a warning
    task: str | None = None

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown RLDS preset {self.preset!r}; known: {', '.join(PRESETS)}")

    @classmethod
    def from_path(cls, root: str | Path, **options: Any) -> RLDSSource:
        mapping = options.pop("mapping", None) or {}
        return cls(root=str(local_path(root, what="source")), mapping=tuple(dict(mapping).items()), **options)

    def describe(self) -> dict[str, Any]:
        return {
            "format": "rlds",
            "path": self.root,
            "options": {
                "splits": list(self.splits),
                "mapping": dict(self.mapping),
                "action_keys": list(self.action_keys),
                "preset": self.preset,
                "fps": self.frame_rate,
                "task": self.task,
            },
        }

    @functools.cached_property
    def frame_rate(self) -> float:
        """`fps`, else the rate dataset_info.json records, else DEFAULT_FPS (with a warning)."""
        from vla_data.assumptions import recorded_rlds_fps

        return float(self.fps or recorded_rlds_fps(self.root) or DEFAULT_FPS)

    # -- metadata --------------------------------------------------------------------------------
    def _json(self, name: str) -> dict[str, Any]:
        path = Path(self.root) / name
        if not path.exists():
            root = Path(self.root)
            versions = sorted(p.name for p in root.iterdir() if (p / name).exists()) if root.is_dir() else []
            here = f"; version folders in {root}: {', '.join(versions)}" if versions else ""
            raise SourceError(
                f"missing {name}: SRC must be a TFDS version folder (<name>/<version>/){here}", file=str(path)
            )
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise SourceError(f"not valid JSON ({e})", file=str(path)) from e

    def leaves(self) -> dict[str, Leaf]:
        return parse_features(self._json("features.json"), str(Path(self.root) / "features.json"))

    def split_table(self) -> list[dict[str, Any]]:
        info = self._json("dataset_info.json")
        known = [s["name"] for s in info.get("splits", [])]
        if unknown := [s for s in self.splits if s not in known]:
            raise SourceError(
                f"no split {unknown[0]!r}; dataset_info.json lists {known}",
                file=str(Path(self.root) / "dataset_info.json"),
            )
        chosen = [s for s in info["splits"] if not self.splits or s["name"] in self.splits]
        return [
            {
                "name": s["name"],
                "files": shard_files(Path(self.root), info, s),
                "episodes": sum(int(n) for n in s.get("shardLengths", [])),
            }
            for s in chosen
        ]

    # -- listing ---------------------------------------------------------------------------------
    def episode_refs(self) -> list[dict[str, Any]]:
        self.roles()  # fail early on a bad mapping
        if not self.fps and self.frame_rate == DEFAULT_FPS:
            warnings.warn(
                f"{self.root}: dataset_info.json records no frame rate; assuming {DEFAULT_FPS:g} fps. "
                "Give RLDSSource(fps=...) (the CLI requires --fps)",
                stacklevel=2,
            )
        refs: list[dict[str, Any]] = []
        for split in self.split_table():
            position = 0
            for path in split["files"]:
                if not path.exists():
                    refs.append(
                        {
                            "file": str(path),
                            "episode": f"{split['name']}/?",
                            "error": "shard file listed in dataset_info.json is missing",
                        }
                    )
                    continue
                try:
                    for offset, _ in record_offsets(str(path)):
                        refs.append(
                            {"file": str(path), "episode": f"{split['name']}/{position}", "offset": offset}
                        )
                        position += 1
                except SourceError as e:
                    refs.append(
                        {"file": str(path), "episode": f"{split['name']}/{position}", "error": e.reason}
                    )
        return refs

    # -- roles -----------------------------------------------------------------------------------
    def roles(self) -> dict[str, Any]:
        """Which TFDS path becomes which canonical feature (`cameras`, `arrays`, `action`, `task`)."""
        leaves = self.leaves()
        mapping = dict(self.mapping)
        drop = set(PRESETS[self.preset]["drop"]) if self.preset else set()
        for name, path in mapping.items():
            if path not in leaves:
                raise SourceError(
                    f"--map {name}={path}: no such feature; features.json has {sorted(leaves)}",
                    file=str(Path(self.root) / "features.json"),
                    key=path,
                )
        for path in self.action_keys:
            if path not in leaves:
                raise SourceError(
                    f"--action-keys: no feature {path!r}",
                    file=str(Path(self.root) / "features.json"),
                    key=path,
                )
        roles: dict[str, Any] = {"arrays": {}, "cameras": {}, "task": None, "action": None}
        if self.action_keys:
            roles["action"] = list(self.action_keys)
        elif ACTION in mapping:
            roles["action"] = [mapping[ACTION]]
        elif "steps/action" in leaves and leaves["steps/action"].kind == "tensor":
            roles["action"] = ["steps/action"]
        else:
            raise SourceError(
                "no steps/action tensor; name one with --map action=<path> or --action-keys a,b,c",
                file=str(Path(self.root) / "features.json"),
                key="steps/action",
            )
        used = set(roles["action"]) | set(mapping.values())
        roles["task"] = mapping.get("task") or next((p for p in TASK_CANDIDATES if p in leaves), None)
        state = mapping.get(STATE) or next((p for p in STATE_CANDIDATES if p in leaves), None)
        if state:
            roles["arrays"][STATE] = state
        for name, path in mapping.items():
            if name.startswith(IMAGE_PREFIX):
                roles["cameras"][name[len(IMAGE_PREFIX) :]] = path
            elif name not in (ACTION, "task", STATE):
                roles["arrays"][name] = path
        for path, leaf in sorted(leaves.items()):
            if path in used or path == state or path in drop or not leaf.in_steps:
                continue
            short = path[len("steps/") :]
            if leaf.kind == "image" and short.startswith("observation/"):
                roles["cameras"].setdefault(short.rsplit("/", 1)[-1], path)
            elif leaf.kind == "tensor":
                name = short if short in STEP_FLAGS else short.replace("/", ".")
                roles["arrays"].setdefault(name, path)
        return roles

    def feature_names(self) -> dict[str, tuple[str, ...]]:
        """Per-dimension names of a concatenated action (`<key>.<i>`)."""
        if not self.action_keys:
            return {}
        leaves = self.leaves()
        names = []
        for path in self.action_keys:
            size = leaves[path].static_size or 1
            short = path.rsplit("/", 1)[-1]
            names += [short] if not leaves[path].shape else [f"{short}.{i}" for i in range(size)]
        return {ACTION: tuple(names)}

    # -- reading ---------------------------------------------------------------------------------
    def read(self, ref: dict[str, Any]) -> Episode:
        file, episode_name = ref["file"], ref["episode"]
        if "error" in ref:
            raise SourceError(ref["error"], file=file, episode=episode_name)
        try:
            data = read_record(file, ref["offset"])
        except SourceError as e:
            raise SourceError(e.reason, file=file, episode=episode_name) from e
        try:
            example = parse_example(data)
        except ExampleError as e:
            raise SourceError(
                f"record at byte offset {ref['offset']} is not a tf.train.Example ({e})",
                file=file,
                episode=episode_name,
            ) from e
        roles, leaves = _cached_roles(self), _cached_leaves(self)
        steps, values = decode_leaves(example, leaves, file, episode_name)
        actions = [values[p].reshape(steps, -1) for p in roles["action"]]
        arrays = {ACTION: actions[0] if len(actions) == 1 else np.concatenate(actions, axis=1)}
        arrays.update({name: values[path] for name, path in roles["arrays"].items()})
        task = self.task
        if task is None and roles["task"]:
            text = values[roles["task"]]
            task = text[0] if isinstance(text, list) and text else text if isinstance(text, str) else ""
        metadata = {
            p.split("/", 1)[1]: _plain(v) for p, v in values.items() if p.startswith("episode_metadata/")
        }
        episode = Episode(
            index=0,
            task=(task or "").strip(),
            fps=self.frame_rate,
            arrays=arrays,
            images={camera: values[path] for camera, path in roles["cameras"].items()},
            source_ref={
                "file": file,
                "episode": episode_name,
                "offset": ref["offset"],
                **({"metadata": metadata} if metadata else {}),
            },
            source_keys={
                ACTION: "+".join(roles["action"]),
                **roles["arrays"],
                **{IMAGE_PREFIX + c: p for c, p in roles["cameras"].items()},
            },
        )
        episode.validate()
        return episode


@functools.lru_cache(maxsize=8)
def _cached_leaves(source: RLDSSource) -> dict[str, Leaf]:
    """features.json parsed once per source and process, not once per episode."""
    return source.leaves()


@functools.lru_cache(maxsize=8)
def _cached_roles(source: RLDSSource) -> dict[str, Any]:
    return source.roles()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.hex()
    return value
