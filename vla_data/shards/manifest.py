"""`manifest.json`: the description of a converted dataset and its commit marker.

Layout of a converted dataset (declared once here):

    OUT/manifest.json             written last, atomically; its presence means the dataset is complete
    OUT/episodes.arrow            one row per episode
    OUT/shards/shard-00000.arrow  Arrow IPC file format, one row per step
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_data.errors import FormatVersionError, ShardError
from vla_data.schema import FORMAT_VERSION, Feature

MANIFEST_FILE = "manifest.json"
EPISODES_FILE = "episodes.arrow"
SHARD_DIR = "shards"
SHARD_FILE_PATTERN = "shard-{index:05d}.arrow"
PROGRESS_FILE = ".progress.jsonl"  # resume journal of an unfinished conversion


def shard_path(index: int) -> str:
    return f"{SHARD_DIR}/{SHARD_FILE_PATTERN.format(index=index)}"


@dataclass
class ShardInfo:
    file: str
    rows: int
    episodes: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    fps: float
    features: dict[str, Feature]
    tasks: list[str]
    shards: list[ShardInfo]
    source: dict[str, Any]
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    created_by: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def num_frames(self) -> int:
        return sum(s.rows for s in self.shards)

    @property
    def num_episodes(self) -> int:
        return sum(s.episodes for s in self.shards)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "created_by": self.created_by,
            "source": self.source,
            "fps": self.fps,
            "features": {name: f.to_json() for name, f in self.features.items()},
            "tasks": self.tasks,
            "shards": [vars(s) for s in self.shards],
            "stats": self.stats,
            "skipped": self.skipped,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            format_version=data["format_version"],
            created_by=data.get("created_by", ""),
            source=data.get("source", {}),
            fps=float(data["fps"]),
            features={name: Feature.from_json(name, f) for name, f in data["features"].items()},
            tasks=list(data["tasks"]),
            shards=[ShardInfo(**s) for s in data["shards"]],
            stats=data.get("stats", {}),
            skipped=data.get("skipped", []),
        )


def write_json_atomic(path: Path, data: Any) -> None:
    """Write strict JSON to `path` through a temporary file and a rename, so readers never see half
    of it. NaN and infinities (which `json` would write as bare `NaN`, invalid for strict parsers)
    are refused, naming where they are."""
    try:
        text = json.dumps(data, indent=1, allow_nan=False)
    except ValueError as e:
        where = _non_finite_path(data) or "?"
        raise ShardError(
            f"{path}: {where} is NaN or infinite; JSON cannot hold it (a non-finite value in the "
            "data? every numeric feature is checked while converting, so this is a bug: please report it)"
        ) from e
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _non_finite_path(data: Any, where: str = "") -> str | None:
    """`stats.observation.velocity.mean[3]`: where the first NaN/inf sits in nested JSON data."""
    if isinstance(data, float) and not math.isfinite(data):
        return where
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        inner = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)
        if found := _non_finite_path(value, inner):
            return found
    return None


def load_manifest(root: str | Path) -> Manifest:
    path = Path(root) / MANIFEST_FILE
    if not path.exists():
        hint = (
            "the conversion did not finish; rerun it with --resume"
            if (Path(root) / PROGRESS_FILE).exists()
            else "it is not a vla-data dataset (convert one with `vla-data convert`)"
        )
        raise ShardError(f"{root}: no {MANIFEST_FILE}: {hint}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ShardError(f"{path}: not valid JSON ({e})") from e
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise FormatVersionError(
            f"{path}: format_version {version!r} is not supported by this vla-data "
            f"(supports {FORMAT_VERSION}); convert the source again or install a matching vla-data"
        )
    return Manifest.from_json(data)
