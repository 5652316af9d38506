"""One robot source with its own settings (SourceConfig): delta dims, horizon in seconds, task
override or template, episode limit. Global LoaderConfig values stay the defaults."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from vla_data.tokenizers.prompt import PromptBuilder

from .config import LoaderConfig, SourceConfig
from .config_check import ConfigError
from .robot import RobotDataset


class TaskPrompt:
    """A PromptBuilder whose robot task text is replaced, or templated: `"{task}, slowly"`."""

    def __init__(self, prompt: PromptBuilder, template: str):
        self._prompt, self._template = prompt, template

    def __getattr__(self, name: str) -> Any:
        return getattr(self._prompt, name)

    def robot(self, task: str, *args: Any, **kwargs: Any):
        return self._prompt.robot(self._template.replace("{task}", task), *args, **kwargs)


def source_horizon(source: SourceConfig, index: int, config: LoaderConfig, fps: list[float]) -> int:
    """Steps of this source's chunks: `horizon_seconds` x its fps, at most the model's horizon."""
    if source.horizon_seconds is None:
        return config.horizon
    if len(set(fps)) > 1:
        raise ConfigError(
            f"sources[{index}].horizon_seconds",
            f"the source's datasets have different fps {sorted(set(fps))}; split them into one source per fps",
        )
    steps = round(source.horizon_seconds * fps[0])
    if not 1 <= steps <= config.horizon:
        raise ConfigError(
            f"sources[{index}].horizon_seconds",
            f"{source.horizon_seconds} s at {fps[0]:g} fps is {steps} steps; it must be 1..horizon ({config.horizon})",
        )
    return steps


class SourceRobotDataset(RobotDataset):
    """A RobotDataset built with the source's settings; chunks shorter than the model's horizon are
    padded (masked in `action_is_pad`), and only the first `max_episodes` episodes are sampled."""

    def __init__(self, source: SourceConfig, index: int, config: LoaderConfig, fast, prompt: PromptBuilder):
        from vla_data.shards import ShardDataset

        fps = [ShardDataset(root).manifest.fps for root in source.paths]
        own = replace(
            config,
            horizon=source_horizon(source, index, config, fps),
            delta_action_dims=config.delta_action_dims
            if source.delta_action_dims is None
            else source.delta_action_dims,
        )
        super().__init__(
            source.paths,
            own,
            fast,
            TaskPrompt(prompt, source.task) if source.task else prompt,
            source.cameras,
        )
        self.model_horizon = config.horizon
        if source.max_episodes is not None:
            self.offsets = _first_episodes(self.datasets, source.max_episodes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = super().__getitem__(index)
        missing = self.model_horizon - len(sample["action_is_pad"])
        if missing:
            sample["actions"] = np.concatenate(
                [sample["actions"], np.zeros((missing, sample["actions"].shape[1]), np.float32)]
            )
            sample["action_is_pad"] = np.concatenate([sample["action_is_pad"], np.ones(missing, bool)])
        return sample


def _first_episodes(datasets, limit: int) -> np.ndarray:
    """Offsets of a source restricted to its first `limit` episodes (datasets in order)."""
    sizes = []
    for ds in datasets:
        take = min(limit, ds.num_episodes)
        sizes.append(int(ds.episode_start[take]))
        limit -= take
    return np.cumsum([0] + sizes)
