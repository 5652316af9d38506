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
from .stage_timer import NO_TIMER


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
        from vla_data.loader.robot import open_dataset

        fps = [open_dataset(root, replace(config, cache_limit=0)).manifest.fps for root in source.paths]
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
            prompt,
            source.cameras,
        )
        self.task_template = (
            source.task
        )  # replaces the episode's task text, or templates it: "{task}, slowly"
        self.model_horizon = config.horizon
        self.selected = None
        if source.split is not None or source.max_episodes is not None:
            self.selected = _selection(self, source, index)

    def __len__(self) -> int:
        return super().__len__() if self.selected is None else int(self.selected[0][-1])

    def task(self, d: int, episode: int) -> str:
        task = super().task(d, episode)
        return self.task_template.replace("{task}", task) if self.task_template else task

    def source_steps(self, indices: np.ndarray) -> np.ndarray:
        """Positions in the selected episodes -> steps of the whole source."""
        if self.selected is None:
            return indices
        ends, starts = self.selected
        k = np.searchsorted(ends, indices, side="right") - 1
        return starts[k] + indices - ends[k]

    def fill_batch(self, batch, rows: np.ndarray, indices: np.ndarray, timer=NO_TIMER) -> None:
        super().fill_batch(batch, rows, self.source_steps(np.asarray(indices)), timer)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(self.source_steps(np.asarray(index)))
        sample = super().__getitem__(index)
        missing = self.model_horizon - len(sample["action_is_pad"])
        if missing:
            sample["actions"] = np.concatenate(
                [sample["actions"], np.zeros((missing, sample["actions"].shape[1]), np.float32)]
            )
            sample["action_is_pad"] = np.concatenate([sample["action_is_pad"], np.ones(missing, bool)])
        return sample


def _selection(robot: RobotDataset, source: SourceConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative steps `[n + 1]`, first source step `[n]`) of the selected episodes: those of
    `split` (splits.json), then the first `max_episodes`. O(episodes) memory."""
    from vla_data.splits import load_splits

    firsts, lengths = [], []
    for d, ds in enumerate(robot.datasets):
        episodes = np.arange(ds.num_episodes)
        if source.split is not None:
            splits = load_splits(ds.root)
            if splits is None:
                raise ConfigError(
                    f"sources[{index}].split",
                    f"{ds.root} has no splits.json; run `vla-data split {ds.root}` (source splits) "
                    "or `vla-data split {ds.root} --val 5%`".replace("{ds.root}", str(ds.root)),
                )
            if source.split not in splits:
                raise ConfigError(
                    f"sources[{index}].split",
                    f"{ds.root} has no split {source.split!r}; splits: {sorted(splits)}",
                )
            episodes = np.asarray(splits[source.split], np.int64)
        firsts.append(robot.offsets[d] + ds.episode_start[episodes])
        lengths.append(ds.episode_length[episodes])
    first, length = np.concatenate(firsts), np.concatenate(lengths)
    if source.max_episodes is not None:
        first, length = first[: source.max_episodes], length[: source.max_episodes]
    if not len(first):
        raise ConfigError(f"sources[{index}].split", f"no episodes in split {source.split!r}")
    return np.concatenate([[0], np.cumsum(length)]), first
