"""Robot samples: images, prompt + FAST targets, normalized state and action chunk with pad masks."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from vla_data.errors import VlaDataError
from vla_data.images import decode_for_size
from vla_data.normalize import Normalizer, pad_dims
from vla_data.schema import ACTION, IMAGE_PREFIX, STATE, column_to_numpy
from vla_data.shards import ShardDataset
from vla_data.shards.reader import open_arrow_file
from vla_data.stats import RunningStats
from vla_data.tokenizers.fast import FastTokenizer
from vla_data.tokenizers.prompt import PromptBuilder

from .chunks import chunk_indices, delta_chunk
from .collate import BatchArrays
from .episode_cache import EpisodeCache, IdLists, binary_views
from .robot_batch import fill_robot_rows
from .stage_timer import NO_TIMER, StageTimer, _NoTimer

FAST_CACHE_DIR = "fast_cache"
DELTA_STATS_CHUNKS = 10_000
FRAME_VIEW_BYTES = 1 << 62  # frame caches hold views of memory-mapped shards: bound by entries only


def image_slots(
    dataset: ShardDataset, slots: tuple[str, ...], mapping: dict[str, str | None] | None
) -> dict[str, str | None]:
    """Model slot -> image feature of `dataset` (None: the slot is empty for this dataset)."""
    cameras = [n for n, f in dataset.features.items() if f.kind == "image"]
    if mapping is None:
        return {slot: (cameras[i] if i < len(cameras) else None) for i, slot in enumerate(slots)}
    out: dict[str, str | None] = {slot: None for slot in slots}
    for slot, camera in mapping.items():
        if slot not in out:
            raise VlaDataError(f"camera mapping names slot {slot!r}; the model's slots are {list(slots)}")
        if camera is not None:
            name = camera if camera.startswith(IMAGE_PREFIX) else IMAGE_PREFIX + camera
            if name not in dataset.features:
                raise VlaDataError(
                    f"{dataset.root}: no camera {camera!r} for slot {slot!r}; cameras: {cameras}"
                )
            out[slot] = name
    return out


def open_dataset(root: str, config) -> ShardDataset:
    """A source's dataset, with the config's remote shard cache and storage options."""
    return ShardDataset(
        root,
        cache_dir=config.cache_dir,
        cache_limit=config.cache_limit,
        storage_options=config.storage_options,
        page_budget=config.page_budget,
    )


def load_image(data: bytes, size: tuple[int, int], *, draft: bool = False) -> np.ndarray:
    """Encoded frame -> uint8 `[3, h, w]`, resized with aspect-preserving pad (openpi's rounding).

    A channels-first view of the decoded `[h, w, 3]` frame: collation copies it into the batch
    once, rather than once here and again there."""
    return decode_for_size(data, *size, "pad", draft=draft).transpose(2, 0, 1)


def load_stored_image(
    ds: ShardDataset, episode: int, row: int, feature: str, data: bytes, config
) -> tuple[np.ndarray, bool]:
    """`load_image` for a frame of a shard; a corrupt frame is an error naming shard, row and column,
    or (bad_images="mask") a blank frame whose mask is False."""
    try:
        return load_image(data, config.image_size, draft=config.image_decode == "draft"), True
    except Exception as e:  # PIL raises several types for corrupt data
        if config.bad_images == "mask":
            return np.zeros((3, *config.image_size), np.uint8), False
        raise stored_image_error(ds, episode, row, feature, e) from e


def stored_image_error(ds: ShardDataset, episode: int, row: int, feature: str, e: Exception) -> VlaDataError:
    shard = ds.manifest.shards[int(ds.episode_shard[episode])].file
    shard_row = int(ds.episode_offset[episode]) + row
    return VlaDataError(
        f"{ds.name}/{shard}: row {shard_row}, column {feature!r}: image cannot be decoded ({e})"
    )


def delta_action_stats(
    dataset: ShardDataset, horizon: int, dims: tuple[int, ...], seed: int = 0
) -> dict[str, Any]:
    """Statistics of delta action chunks (deterministic sample), to normalize them like openpi does."""
    rng = np.random.default_rng(seed)
    episodes = np.repeat(np.arange(dataset.num_episodes), dataset.episode_length)
    frames = np.concatenate([np.arange(n) for n in dataset.episode_length])
    pick = np.sort(rng.choice(len(episodes), min(DELTA_STATS_CHUNKS, len(episodes)), replace=False))
    stats = RunningStats()
    for episode in np.unique(episodes[pick]):
        length = int(dataset.episode_length[episode])  # ranged: never fills a remote shard cache
        data = dataset.columns(dataset.rows(int(episode), 0, length, [ACTION, STATE], ranged=True))
        starts = frames[pick][episodes[pick] == episode]
        rows, _ = chunk_indices(len(data[ACTION]), starts, horizon)
        chunks = delta_chunk(data[ACTION][rows], data[STATE][starts], dims)  # [n, H, D]
        stats.update(chunks.reshape(-1, chunks.shape[-1]))
    return stats.result()


class RobotDataset:
    """Samples of one or more converted robot datasets; index = global step."""

    def __init__(
        self, roots: tuple[str, ...], config, fast: FastTokenizer, prompt: PromptBuilder, cameras=None
    ):
        self.config = config
        self.fast = fast
        self.prompt = prompt
        self.datasets = [open_dataset(root, config) for root in roots]
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])
        self.slots, self.state_norm, self.action_norm, self.cache_paths = [], [], [], []
        for ds in self.datasets:
            if ACTION not in ds.features:
                raise VlaDataError(f"{ds.root}: robot source without an 'action' feature")
            if config.delta_action_dims and STATE not in ds.features:
                raise VlaDataError(f"{ds.root}: delta_action_dims needs observation.state")
            self.slots.append(image_slots(ds, config.image_slots, cameras))
            stats = ds.manifest.stats
            self.state_norm.append(
                Normalizer.from_stats(stats[STATE], config.normalization) if STATE in ds.features else None
            )
            action_stats = (
                delta_action_stats(ds, config.horizon, config.delta_action_dims)
                if config.delta_action_dims
                else stats[ACTION]
            )
            self.action_norm.append(Normalizer.from_stats(action_stats, config.normalization))
            path = Path(ds.root) / FAST_CACHE_DIR / f"{self.cache_key(len(self.action_norm) - 1)}.arrow"
            local = config.use_fast_cache and not ds.remote  # remote roots compute FAST ids per sample
            self.cache_paths.append(path if local and path.exists() else None)
        self._ids: dict[int, IdLists] = {}
        self._episodes = EpisodeCache()
        self._frames = EpisodeCache(max_bytes=FRAME_VIEW_BYTES)
        self._blank = np.zeros((*config.image_size, 3), np.uint8).transpose(2, 0, 1)  # like load_image
        self._blank.flags.writeable = False

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "_ids": {},
            "_episodes": EpisodeCache(),
            "_frames": EpisodeCache(max_bytes=FRAME_VIEW_BYTES),
        }

    def cache_key(self, d: int) -> str:
        """What determines the FAST ids of a dataset's chunks: tokenizer, horizon, normalization."""
        norm = self.action_norm[d]
        digest = hashlib.sha256()
        for part in (self.fast.fingerprint, self.config.horizon, norm.mode, self.config.delta_action_dims):
            digest.update(repr(part).encode())
        digest.update(norm.offset.tobytes() + norm.scale.tobytes())
        return f"h{self.config.horizon}-{digest.hexdigest()[:16]}"

    def locate(self, index: int) -> tuple[int, int, int]:
        d = int(np.searchsorted(self.offsets, index, side="right") - 1)
        episode, frame = self.datasets[d].locate(int(index - self.offsets[d]))
        return d, episode, frame

    def normalized_chunks(
        self, d: int, actions: np.ndarray, state: np.ndarray | None, starts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Normalized chunks `[n, H, Da]` and `action_is_pad` `[n, H]` at `starts` of one episode."""
        rows, is_pad = chunk_indices(len(actions), starts, self.config.horizon)
        chunks = actions[rows].astype(np.float64)
        if self.config.delta_action_dims:
            chunks = delta_chunk(chunks, state[starts], self.config.delta_action_dims)
        return self.action_norm[d].normalize(chunks), is_pad

    def fast_ids(self, d: int, global_row: int, chunk: np.ndarray) -> np.ndarray:
        if self.cache_paths[d] is None:
            return np.asarray(self.fast.encode(chunk[None], on_error="clip")[0], np.int64)
        return self.id_lists(d)[global_row]

    def id_lists(self, d: int) -> IdLists:
        """Dataset `d`'s pre-tokenized FAST ids (`cache_paths[d]` must be set), opened once per process."""
        if d not in self._ids:
            self._ids[d] = IdLists(open_arrow_file(self.cache_paths[d]).column("ids"))
        return self._ids[d]

    def task(self, d: int, episode: int) -> str:
        """The task text of an episode, as the prompt gets it."""
        return self.datasets[d].task(episode)

    def frame(self, d: int, episode: int, feature: str, t: int) -> bytes:
        return bytes(self.frame_view(d, episode, feature, t))

    def frame_view(self, d: int, episode: int, feature: str, t: int) -> np.ndarray | bytes:
        """Encoded frame `t` of a camera. Local (and cached remote) datasets: a uint8 view of the
        memory-mapped shard, cut through per-episode offsets cached per worker; remote ones without
        a cache: that frame's byte range only."""
        ds = self.datasets[d]
        if ds.remote and ds.cache is None:
            return ds.rows(episode, t, t + 1, [feature]).column(feature)[0].as_py()
        offsets, data = self.frame_table(d, episode, feature)
        return data[offsets[t] : offsets[t + 1]]

    def frame_table(self, d: int, episode: int, feature: str) -> tuple[np.ndarray, np.ndarray]:
        """Offsets `[T + 1]` and bytes of a camera's encoded frames in an episode (`binary_views`
        of the memory-mapped shard), cached per process; local or cached remote datasets only."""
        ds = self.datasets[d]
        return self._frames.get(
            (d, episode, feature), lambda: binary_views(ds.episode_table(episode).column(feature))
        )

    def episode_arrays(
        self, d: int, episode: int, rows: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """`action` `[T, Da]` and `observation.state` `[T, S]` (or None) of an episode, cached; or
        only `rows` (start, stop) of it, uncached (remote datasets without a shard cache)."""

        def load() -> tuple[np.ndarray, np.ndarray | None]:
            ds = self.datasets[d]
            columns = [c for c in (ACTION, STATE) if c in ds.features]
            table = ds.rows(episode, *rows, columns) if rows else ds.episode_table(episode, columns)
            actions = column_to_numpy(table.column(ACTION), ds.features[ACTION]).reshape(table.num_rows, -1)
            if STATE not in ds.features:
                return actions, None
            return actions, column_to_numpy(table.column(STATE), ds.features[STATE]).reshape(
                table.num_rows, -1
            )

        return load() if rows else self._episodes.get((d, episode), load)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.sample(index)

    def fill_batch(
        self,
        batch: BatchArrays,
        rows: np.ndarray,
        indices: np.ndarray,
        timer: StageTimer | _NoTimer = NO_TIMER,
    ) -> None:
        """Write the samples at steps `indices` into `rows` of `batch`, all at once (`robot_batch`)."""
        fill_robot_rows(self, batch, rows, indices, timer)

    def sample(self, index: int, timer: StageTimer | _NoTimer = NO_TIMER) -> dict[str, Any]:
        """The sample at global step `index`; `timer` (bench loader --profile) is charged per stage."""
        d, episode, t = self.locate(index)
        ds = self.datasets[d]
        ds.check_pages()  # the caches below keep views of mapped rows: bound their pages here
        timer.mark("locate")
        if ds.remote and ds.cache is None:  # no shard cache: fetch only this sample's rows
            first = t
            actions, state = self.episode_arrays(
                d, episode, (t, min(int(ds.episode_length[episode]), t + self.config.horizon))
            )
        else:
            first = 0
            actions, state = self.episode_arrays(d, episode)
        timer.mark("read")
        start = t - first  # the sample's row in `actions` / `state`
        chunk, is_pad = self.normalized_chunks(d, actions, state, np.array([start]))
        chunk, is_pad = chunk[0], is_pad[0]  # [H, Da], [H]
        norm_state = self.state_norm[d].normalize(state[start]) if state is not None else None
        padded_actions, dim_mask = pad_dims(chunk.astype(np.float32), self.config.action_dim)
        padded_state = (
            pad_dims(norm_state.astype(np.float32), self.config.action_dim)[0]
            if norm_state is not None
            else np.zeros(self.config.action_dim, np.float32)
        )
        timer.mark("normalize")
        ids = self.fast_ids(d, int(index - self.offsets[d]), chunk)
        timer.mark("FAST ids")
        tokens = self.prompt.robot(self.task(d, episode), norm_state, ids)
        timer.mark("prompt")
        images, masks, dropped = {}, {}, 0
        for slot, feature in self.slots[d].items():
            if feature is None:
                images[slot], masks[slot] = self._blank, False
            else:
                images[slot], masks[slot] = load_stored_image(
                    ds, episode, t, feature, self.frame(d, episode, feature, t), self.config
                )
                dropped += not masks[slot]
        timer.mark("image decode")
        return {
            "images": images,
            "image_masks": masks,
            "tokens": tokens,
            "state": padded_state,
            "actions": padded_actions,
            "action_is_pad": is_pad,
            "action_dim_mask": dim_mask,
            "has_actions": True,
            "images_dropped": dropped,
            "where": f"{ds.root} episode {episode} step {t}",
        }
