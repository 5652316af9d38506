"""A generated robot source of any size, for scale benchmarks and tests that count work.

Episodes are made on demand (smooth seeded actions, one tiny JPEG repeated per step), so a
dataset of millions of steps converts at the writer's speed without source files on disk.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_data.episode import Episode


def tiny_jpeg(size: int = 8) -> bytes:
    """A valid `size` x `size` JPEG (a few hundred bytes)."""
    from PIL import Image

    buffer = io.BytesIO()
    gradient = np.linspace(0, 255, size * size * 3).astype(np.uint8).reshape(size, size, 3)
    Image.fromarray(gradient).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


@dataclass(frozen=True)
class SyntheticRobotSource:
    """`episodes` x `steps` steps of `dim`-dim float32 action and state; `camera` adds one JPEG camera."""

    episodes: int
    steps: int
    dim: int = 7
    camera: bool = True
    fps: float = 10.0
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        return {"format": "synthetic", "path": f"synthetic:{self.episodes}x{self.steps}"}

    def episode_refs(self) -> list[dict[str, Any]]:
        return [{"episode": i} for i in range(self.episodes)]

    def read(self, ref: dict[str, Any]) -> Episode:
        index = int(ref["episode"])
        rng = np.random.default_rng([self.seed, index])
        t = np.linspace(0, 2 * np.pi, self.steps, dtype=np.float32)[:, None]
        phase = rng.uniform(0, 2 * np.pi, self.dim).astype(np.float32)
        action = np.sin(t * rng.uniform(0.5, 2.0, self.dim).astype(np.float32) + phase)  # [T, dim]
        state = np.cos(t + phase)  # [T, dim]
        images = {"cam_high": [tiny_jpeg()] * self.steps} if self.camera else {}
        return Episode(
            index=index,
            task=f"task {index % 5}",
            fps=self.fps,
            arrays={"action": action.astype(np.float32), "observation.state": state.astype(np.float32)},
            images=images,
            source_ref={"file": "synthetic", "episode": str(index)},
        )
