"""Insulated co-training loader: robot + web samples, mixed by weight, one batch contract.

loader = make_loader("loader.json")       # or a LoaderConfig
for batch in loader:                      # dict of torch tensors, DESIGN section 7
    ...
state = loader.state_dict()               # resume later with loader.load_state_dict(state)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_data.errors import VlaDataError
from vla_data.schema import ACTION, STATE
from vla_data.tokenizers.fast import FastTokenizer
from vla_data.tokenizers.prompt import PromptBuilder
from vla_data.tokenizers.text import ByteTokenizer, HFTokenizer

from .attention import ki_attention_mask
from .check import announce_cameras, check_cached_lengths
from .collate import BatchShape, Collate
from .config import LoaderConfig, SourceConfig
from .config_check import ConfigError
from .mixture import LoaderState, MixtureBatchSampler, MixturePlan
from .robot import RobotDataset
from .shared_buffers import WorkerBuffers, release_when_freed
from .source_view import SourceRobotDataset
from .web import WebDataset

__all__ = ["LoaderConfig", "SourceConfig", "VlaLoader", "ki_attention_mask", "make_loader", "build_sources"]


class MixtureDataset(torch.utils.data.Dataset):
    """Maps a (source, sample) key to that source's sample; with a `collate` that knows the batch
    shape, a list of keys to a finished batch (`__getitems__`, which the DataLoader calls in the
    main process and in workers instead of one `__getitem__` per sample)."""

    def __init__(self, sources: list[RobotDataset | WebDataset], collate: Collate | None = None):
        self.sources, self.collate = sources, collate

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        source, index = key
        sample = self.sources[source][index]
        sample["source"] = source
        return sample

    def __getitems__(self, keys: list[tuple[int, int]]) -> dict[str, Any] | list[dict[str, Any]]:
        if self.collate is None or self.collate.shape is None:
            return [self[key] for key in keys]
        return self.collate.assemble(self.sources, keys)


def text_tokenizer(config: LoaderConfig):
    if config.text_tokenizer == "byte":
        return ByteTokenizer()
    return HFTokenizer(config.text_tokenizer, **config.text_special_tokens)


def build_sources(config: LoaderConfig) -> tuple[list[RobotDataset | WebDataset], PromptBuilder]:
    fast = FastTokenizer.from_pretrained(config.fast_tokenizer) if config.fast_tokenizer else None
    try:
        prompt = PromptBuilder(
            text_tokenizer(config),
            fast.bpe_vocab_size if fast else 0,
            mapping=config.fast_mapping,
            skip=config.fast_skip,
            state_in_prompt=config.state_in_prompt,
            lowercase=config.lowercase,
            prompt_format=config.prompt_format,
        )
    except VlaDataError as e:
        raise ConfigError("fast_mapping", f'{e} (in a loader config: "fast_mapping": "append")') from e
    sources: list[RobotDataset | WebDataset] = []
    for i, source in enumerate(config.sources):
        if source.kind == "robot":
            sources.append(SourceRobotDataset(source, i, config, fast, prompt))
            check_dims(sources[-1], i, config.action_dim)
            announce_cameras(sources[-1], i, explicit=source.cameras is not None)
        else:
            sources.append(WebDataset(source.paths, config, prompt))
            if source.max_episodes is not None:  # a web sample is a one-step episode
                sources[-1].offsets = np.minimum(sources[-1].offsets, source.max_episodes)
    return sources, prompt


def check_dims(source: RobotDataset, index: int, action_dim: int) -> None:
    """Every action/state fits the model dimension; said before the first batch, naming the dataset."""
    for ds in source.datasets:
        for name in (ACTION, STATE):
            if name in ds.features and (dims := int(np.prod(ds.features[name].shape))) > action_dim:
                raise ConfigError(
                    "action_dim",
                    f"sources[{index}] {ds.root}: {name!r} has {dims} dimensions, more than "
                    f"action_dim={action_dim}; set action_dim >= {dims}",
                )


class VlaLoader:
    """A `torch.utils.data.DataLoader` over the mixture, with exact mid-epoch resume."""

    def __init__(self, config: LoaderConfig):
        self.config = config
        self.sources, self.prompt = build_sources(config)
        for i, source in enumerate(self.sources):  # a too-long sequence fails now, not hours into training
            if isinstance(source, RobotDataset):
                check_cached_lengths(source, i, config.max_tokens, config.truncate)
        sizes = tuple(len(s) for s in self.sources)
        weights = tuple(s.weight for s in config.sources)
        self.plan = MixturePlan(
            sizes=sizes,
            weights=weights,
            batch_size=config.batch_size,
            samples_per_epoch=config.samples_per_epoch or _default_epoch(config, sizes),
            mode=config.mode,
            seed=config.seed,
            world_size=config.world_size,
            shuffle=config.shuffle,
            window=config.shuffle_window,
            blocks=tuple(shard_blocks(s) for s in self.sources) if config.shuffle == "shard_block" else None,
        )
        self.state = LoaderState()
        workers = config.num_workers
        collate = Collate(
            config.max_tokens,
            self.prompt.text.pad_id,
            config.truncate,
            config.bad_images == "mask",
            BatchShape(config.image_slots, config.image_size, config.horizon, config.action_dim),
            # pinned batches are copies (the pin thread drops the worker's): nothing to reuse then
            WorkerBuffers(workers) if workers > 0 and not config.pin_memory else None,
        )
        self.dataloader = torch.utils.data.DataLoader(
            MixtureDataset(self.sources, collate),
            batch_sampler=MixtureBatchSampler(self.plan, config.rank, self.state),
            collate_fn=collate,
            num_workers=workers,
            pin_memory=config.pin_memory,
            persistent_workers=config.persistent_workers and workers > 0,
        )

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return self.plan.batches_per_rank

    def __iter__(self):
        """This rank's remaining batches of the current epoch (the next epoch once it is used up)."""
        if self.state.batch >= self.plan.batches_per_rank:
            self.state.epoch, self.state.batch = self.state.epoch + 1, 0
        buffers = self.dataloader.collate_fn.buffers
        for batch in self.dataloader:
            self.state.batch += 1
            if buffers is not None:
                release_when_freed(batch, buffers)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.state.epoch,
            "batch": self.state.batch,
            "seed": self.config.seed,
            "batch_size": self.config.batch_size,
            "world_size": self.config.world_size,
            "shuffle": self.config.shuffle,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seed", "batch_size", "world_size", "shuffle"):
            if state.get(key, "random" if key == "shuffle" else None) != getattr(self.config, key):
                raise VlaDataError(
                    f"loader state was saved with {key}={state.get(key)}, this loader has {getattr(self.config, key)}"
                )
        if not 0 <= state["batch"] <= self.plan.batches_per_rank:
            raise VlaDataError(
                f"loader state batch {state['batch']} is outside this epoch (0..{self.plan.batches_per_rank})"
            )
        self.state.epoch, self.state.batch = int(state["epoch"]), int(state["batch"])


def shard_blocks(source: RobotDataset | WebDataset) -> tuple[int, ...]:
    """Sample index where each shard of the source's datasets starts, then the source size."""
    starts = []
    for offset, ds in zip(source.offsets, source.datasets, strict=False):
        change = np.flatnonzero(np.diff(ds.episode_shard)) + 1  # episodes that open another shard
        starts.append(int(offset) + ds.episode_start[np.r_[0, change]])
    return (*np.concatenate(starts).tolist(), len(source))


def _default_epoch(config: LoaderConfig, sizes: tuple[int, ...]) -> int:
    """One pass over the robot data at its mixture weight (all data if there is no robot source)."""
    robot = [(size, s.weight) for size, s in zip(sizes, config.sources, strict=True) if s.kind == "robot"]
    if not robot:
        return sum(sizes)
    total_weight = sum(s.weight for s in config.sources)
    return int(sum(size for size, _ in robot) * total_weight / sum(w for _, w in robot))


def make_loader(config: LoaderConfig | str | Path) -> VlaLoader:
    """The one entry point a training script calls: a config object or the path of a JSON config."""
    if isinstance(config, LoaderConfig):
        return VlaLoader(config.resolve_paths())
    try:
        return VlaLoader(LoaderConfig.load(config))
    except ConfigError as e:
        raise (e if e.file else e.in_file(config)) from None
