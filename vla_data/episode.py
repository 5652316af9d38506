"""The in-memory episode that every source reader yields, one at a time."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla_data.errors import SourceError
from vla_data.schema import IMAGE_PREFIX


@dataclass
class Episode:
    """One demonstration, as read from a source.

    `arrays` maps canonical names (`action`, `observation.state`, ...) to `[T, ...]` arrays;
    `images` maps camera names to `T` encoded frames (JPEG/PNG bytes) or a uint8 `[T, H, W, 3]` array.
    `source_ref` says where it came from (`file` and `episode` keys) for errors and provenance.
    """

    index: int
    task: str
    fps: float
    arrays: dict[str, np.ndarray]
    images: dict[str, list[bytes] | np.ndarray] = field(default_factory=dict)
    source_ref: dict[str, str] = field(default_factory=dict)
    timestamps: np.ndarray | None = None  # [T] seconds; default frame_index / fps
    original_image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # set when resized
    source_keys: dict[str, str] = field(default_factory=dict)  # canonical name -> key in the source
    stored_image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # set once encoded
    # web groups: single samples left out ({"source_ref": ..., "reason": ...}), listed in the manifest
    skipped_samples: list[dict] = field(default_factory=list)

    def key_name(self, name: str) -> str:
        """How errors name a feature: its key in the source file, and the canonical name if it differs."""
        source = self.source_keys.get(name, name)
        return source if source == name else f"{source} ({name})"

    @property
    def length(self) -> int:
        first = self.arrays.get("action")
        if first is None:
            first = next(iter(self.arrays.values()), None)
        if first is None:
            first = next(iter(self.images.values()), ())
        return len(first)

    def validate(self, *, require_action: bool = True) -> None:
        """Check equal lengths across keys and that every floating array (not only action and
        state: velocities, efforts, rewards...) is finite; raise `SourceError` naming the key."""
        file = self.source_ref.get("file", "?")
        episode = self.source_ref.get("episode", self.index)
        if require_action and "action" not in self.arrays:
            raise SourceError(
                "no action array in episode", file=file, episode=episode, key=self.key_name("action")
            )
        length = self.length
        if length == 0:
            raise SourceError("episode has no steps", file=file, episode=episode, key=self.key_name("action"))
        for name, values in {**self.arrays, **self.images}.items():
            if len(values) != length:
                raise SourceError(
                    f"has {len(values)} steps but the episode has {length} (ragged episode)",
                    file=file,
                    episode=episode,
                    key=self.key_name(name if name in self.arrays else IMAGE_PREFIX + name),
                )
        for name, values in self.arrays.items():
            if not isinstance(values, np.ndarray) or not np.issubdtype(values.dtype, np.floating):
                continue  # Arrow list columns (web samples) are checked by their reader
            bad = ~np.isfinite(values)
            if bad.any():
                step = int(np.argwhere(bad)[0][0])
                raise SourceError(
                    f"non-finite value {values.reshape(length, -1)[step][bad.reshape(length, -1)[step]][0]} "
                    f"at step {step}",
                    file=file,
                    episode=episode,
                    key=self.key_name(name),
                )
