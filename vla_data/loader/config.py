"""Loader configuration: a frozen dataclass that round-trips through JSON (`loader.json`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from vla_data.errors import VlaDataError

DEFAULT_SLOTS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")


@dataclass(frozen=True)
class SourceConfig:
    """One mixture source: robot shards (FAST targets + continuous actions) or web VLM shards.

    `cameras` maps model image slots to the dataset's camera names (None: slot always empty);
    by default the dataset's cameras fill the slots in order.
    """

    kind: Literal["robot", "web"]
    paths: tuple[str, ...]
    weight: float = 1.0
    cameras: dict[str, str | None] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("robot", "web"):
            raise VlaDataError(f"source kind must be 'robot' or 'web', got {self.kind!r}")
        if not self.paths:
            raise VlaDataError(f"{self.kind} source has no paths")
        if not self.weight > 0:
            raise VlaDataError(f"source weight must be > 0, got {self.weight}")
        object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))


@dataclass(frozen=True)
class LoaderConfig:
    sources: tuple[SourceConfig, ...]
    fast_tokenizer: str | None = None  # FAST tokenizer directory; needed by robot sources
    text_tokenizer: str = "byte"  # "byte" (built-in) or a tokenizer.json path
    text_special_tokens: dict[str, str] = field(
        default_factory=lambda: {"bos": "<bos>", "eos": "<eos>", "pad": "<pad>"}
    )
    fast_mapping: Literal["tail", "append"] = "tail"
    fast_skip: int = 128
    batch_size: int = 32
    max_tokens: int = 256
    truncate: bool = False  # False: a longer sequence is an error; True: cut and flag in the batch
    horizon: int = 50
    action_dim: int = 32
    image_size: tuple[int, int] = (224, 224)
    image_slots: tuple[str, ...] = DEFAULT_SLOTS
    normalization: Literal["quantile", "zscore"] = "quantile"
    state_in_prompt: bool = True
    lowercase: bool = True
    delta_action_dims: tuple[int, ...] = ()  # action dims made relative to the current state
    mode: Literal["random", "stratified"] = "random"
    # shard_block: each rank reads a window of `shuffle_window` shards at a time (for shard caches
    # smaller than the dataset); random (default): every sample of a source shuffled together
    shuffle: Literal["random", "shard_block"] = "random"
    shuffle_window: int = 4
    seed: int = 0
    samples_per_epoch: int | None = None  # default: the robot sources' steps
    num_workers: int = 0
    rank: int = 0
    world_size: int = 1
    pin_memory: bool = False
    persistent_workers: bool = False
    use_fast_cache: bool = True
    bad_images: Literal["fail", "mask"] = (
        "fail"  # mask: a frame that cannot be decoded becomes a masked blank, counted per batch
    )

    def __post_init__(self) -> None:
        sources = tuple(s if isinstance(s, SourceConfig) else SourceConfig(**s) for s in self.sources)
        object.__setattr__(self, "sources", sources)
        size = self.image_size
        object.__setattr__(self, "image_size", (size, size) if isinstance(size, int) else tuple(size))
        object.__setattr__(self, "image_slots", tuple(self.image_slots))
        object.__setattr__(self, "delta_action_dims", tuple(self.delta_action_dims))
        if not sources:
            raise VlaDataError("the loader needs at least one source")
        if any(s.kind == "robot" for s in sources) and not self.fast_tokenizer:
            raise VlaDataError(
                "robot sources need fast_tokenizer (a directory from `vla-data tokenizer fit`)"
            )
        if self.bad_images not in ("fail", "mask"):
            raise VlaDataError(f"bad_images must be 'fail' or 'mask', got {self.bad_images!r}")
        if self.mode not in ("random", "stratified"):
            raise VlaDataError(f"mode must be 'random' or 'stratified', got {self.mode!r}")
        if self.shuffle not in ("random", "shard_block"):
            raise VlaDataError(f"shuffle must be 'random' or 'shard_block', got {self.shuffle!r}")
        if self.shuffle_window < 1:
            raise VlaDataError(f"shuffle_window must be >= 1 shard, got {self.shuffle_window}")
        if self.batch_size < 1 or self.max_tokens < 1 or self.horizon < 1:
            raise VlaDataError("batch_size, max_tokens and horizon must be positive")
        if not 0 <= self.rank < self.world_size:
            raise VlaDataError(f"rank {self.rank} is not in 0..world_size-1 ({self.world_size})")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sources"] = [asdict(s) for s in self.sources]
        return data

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LoaderConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise VlaDataError(f"{path}: cannot read loader config ({e})") from e
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise VlaDataError(f"{path}: unknown loader settings {unknown}; known: {sorted(known)}")
        data["sources"] = [SourceConfig(**{**s, "paths": tuple(s["paths"])}) for s in data["sources"]]
        return cls(**data)
