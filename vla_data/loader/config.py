"""Loader configuration: frozen dataclasses that round-trip through JSON (`loader.json`).

Relative paths in a config file are relative to that file's folder, so a config and the data it
names can move together; every mistake is an error naming the file, the source and the key.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from vla_data.errors import VlaDataError
from vla_data.shards.pages import DEFAULT_PAGE_BUDGET
from vla_data.tokenizers.web_text import DEFAULT_TEMPLATES

from .config_check import ConfigError, check_fields, closest_choice, require_path, resolve_path, unknown_keys

DEFAULT_SLOTS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")


@dataclass(frozen=True)
class SourceConfig:
    """One mixture source: robot shards (FAST targets + continuous actions) or web VLM shards.

    Attributes:
        kind: "robot" (converted robot demonstrations) or "web" (`vla-data convert web` output).
        paths: Dataset folders (or URIs) of this source, a list even for one folder. In a config
            file, relative paths are relative to the file's folder.
        weight: Share of this source in the mixture, relative to the other sources' weights.
        cameras: Model image slot -> the dataset's camera name (without `observation.images.`),
            None leaving the slot empty. Default: the dataset's cameras fill the slots in order.
        task: Robot: the task text of every episode, or a template where `{task}` stands for the
            episode's own task (`"{task}, slowly"`). Default: the episode's task.
        delta_action_dims: Robot: this source's `delta_action_dims` (default: the loader's).
        horizon_seconds: Robot: chunk length in seconds at this source's fps (at most the loader's
            `horizon` steps; shorter chunks are padded and masked in `action_is_pad`).
        max_episodes: Sample only the first N episodes of this source (default: all).
        split: Robot: sample only this split's episodes ("train", "val", ...) from each dataset's
            splits.json (`vla-data split`). Default: every episode.
    """

    kind: Literal["robot", "web"]
    paths: tuple[str, ...]
    weight: float = 1.0
    cameras: dict[str, str | None] | None = None
    task: str | None = None
    delta_action_dims: tuple[int, ...] | None = None
    horizon_seconds: float | None = None
    max_episodes: int | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.paths, str):
            raise ConfigError(
                "paths",
                f"paths must be a list, got the string {self.paths!r}; write {json.dumps([self.paths])}",
            )
        for name in ("paths", "delta_action_dims"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.kind not in ("robot", "web"):
            raise ConfigError(
                "kind",
                f"must be 'robot' or 'web', got {self.kind!r}{closest_choice(self.kind, ('robot', 'web'))}",
            )
        check_fields(self)
        if not self.paths:
            raise ConfigError("paths", f"the {self.kind} source has no paths")
        if not self.weight > 0:
            raise ConfigError("weight", f"must be > 0, got {self.weight}")
        if self.max_episodes is not None and self.max_episodes < 1:
            raise ConfigError("max_episodes", f"must be >= 1, got {self.max_episodes}")
        if self.horizon_seconds is not None and not self.horizon_seconds > 0:
            raise ConfigError("horizon_seconds", f"must be > 0, got {self.horizon_seconds}")
        robot_only = ("task", "delta_action_dims", "horizon_seconds", "cameras", "split")
        if self.kind == "web" and (given := [n for n in robot_only if getattr(self, n) is not None]):
            raise ConfigError(given[0], "applies to robot sources only")

    @classmethod
    def from_dict(cls, data: Any) -> SourceConfig:
        if not isinstance(data, dict):
            raise ConfigError("", f"a source must be an object with kind and paths, got {data!r}")
        unknown_keys(data, [f.name for f in fields(cls)])
        for key in ("kind", "paths"):
            if key not in data:
                raise ConfigError("", f"missing key {key!r} (every source needs kind and paths)")
        return cls(**data)


@dataclass(frozen=True)
class LoaderConfig:
    """Everything `make_loader` needs; `LoaderConfig.load("loader.json")` reads the JSON form.

    Attributes:
        sources: The mixture's sources (`SourceConfig`s, or dicts with their keys).
        fast_tokenizer: FAST tokenizer folder (`vla-data tokenizer fit`); needed by robot sources.
        text_tokenizer: "byte" (the built-in byte-level tokenizer) or the path of a Hugging Face
            `tokenizer.json`.
        text_special_tokens: The text tokenizer's BOS / EOS / pad token strings.
        fast_mapping: Where FAST ids go in the text vocabulary: "tail" (openpi,
            `vocab_size - 1 - fast_skip - id`) or "append" (`vocab_size + id`, new embedding rows).
            Default: "append" for the byte tokenizer (it has no spare ids), "tail" otherwise.
        fast_skip: Ids left free at the end of the vocabulary by the tail mapping (128 for PaliGemma).
        batch_size: Samples per batch (per rank).
        max_tokens: Token sequence length L; a longer sample is an error unless `truncate`.
        truncate: False: a longer sequence is an error; True: cut it and flag it in `batch["truncated"]`.
        horizon: Action chunk length H, in steps.
        action_dim: Model action/state dimension D; datasets are zero-padded up to it.
        image_size: Model image size (height, width); frames are resized with aspect-preserving pad.
        image_slots: The model's image slot names, in order.
        image_decode: "full" (default): decode whole JPEGs, then resize: openpi's pixels. "draft":
            libjpeg DCT-scaled decode, faster for frames >= 2x the model size; pixels differ slightly.
        decode_threads: Threads decoding the frames of a batch in the process that builds it (the
            decoders release the GIL). "auto" (default): up to 4 (at most the CPUs the process may
            use) with num_workers=0, 1 in each DataLoader worker (the workers already share the
            cores); or a number >= 1 for every process. Batches are the same bytes with any count.
        normalization: "quantile" (q01/q99 to [-1, 1], pi0.5) or "zscore".
        state_in_prompt: Put the discretized state in the prompt text (pi0-FAST layout).
        lowercase: Lowercase the task text in the prompt ("vla_data" format only).
        prompt_format: Robot prompt layout: "vla_data" (ours), or openpi's "pi0fast" / "pi05",
            reproduced token for token (see `vla_data.tokenizers.prompt` and the README).
        delta_action_dims: Action dims made relative to the current state (e.g. joints, not grippers).
        mode: "random" (weights hold in expectation) or "stratified" (every batch holds them exactly).
        shuffle: "random" (default: each source's samples in one seeded permutation per pass) or
            "shard_block" (each rank draws from a window of `shuffle_window` shards at a time, each
            shard about once per pass: for shard caches smaller than the dataset).
        shuffle_window: Shards per window for shuffle="shard_block".
        seed: Seed of the mixture plan; batches are a pure function of (seed, epoch, batch).
        samples_per_epoch: Samples per epoch over all ranks; default: one pass over the robot data.
        num_workers: DataLoader worker processes.
        rank: This process's rank among `world_size` data-parallel ranks.
        world_size: Number of data-parallel ranks; ranks see disjoint batches.
        pin_memory: DataLoader `pin_memory`.
        persistent_workers: Keep workers alive between epochs (only with num_workers > 0).
        use_fast_cache: Use the pre-tokenized FAST ids of `vla-data tokenizer cache` when present.
        bad_images: "fail": an undecodable frame is an error; "mask": a blank frame whose mask is
            False, counted in `batch["images_dropped"]`.
        cache_dir: Remote roots (s3://, gs://, ...): node-local shard cache folder, shared by the
            workers and processes of a node (default ~/.cache/vla-data/shards).
        cache_limit: Bytes the shard cache may hold, least recently used shards out first (default
            32 GiB); 0: no cache, each sample reads only its own rows and columns.
        page_budget: Bytes of memory-mapped shard pages each process (each DataLoader worker) may
            gain before they are released from its RSS (default 64 MiB; they stay in the page cache
            and are read again when touched); None: no budget (every page touched stays mapped).
        storage_options: pyarrow filesystem options for remote roots (e.g. endpoint_url,
            access_key, secret_key, region); never printed. Default: the AWS environment variables.
        web_templates: Prompt template per web sample kind (caption, vqa, detection, chat), applied to
            the first user turn; PaliGemma's by default (`caption en`, `answer en {question}`,
            `detect {labels}`, `{question}`).
        web_resize_mode: "pad" or "crop": how web images, and their boxes with them, reach
            `image_size` (boxes cropped away are dropped, counted in `batch["boxes_dropped"]`).
        web_extra_images: "fail": a web sample with more images than `image_slots` is an error;
            "drop": keep the first ones, counted in `batch["extra_images_dropped"]`.
    """

    sources: tuple[SourceConfig, ...]
    fast_tokenizer: str | None = None
    text_tokenizer: str = "byte"
    text_special_tokens: dict[str, str] = field(
        default_factory=lambda: {"bos": "<bos>", "eos": "<eos>", "pad": "<pad>"}
    )
    fast_mapping: Literal["tail", "append"] | None = None
    fast_skip: int = 128
    batch_size: int = 32
    max_tokens: int = 256
    truncate: bool = False
    horizon: int = 50
    action_dim: int = 32
    image_size: tuple[int, int] = (224, 224)
    image_slots: tuple[str, ...] = DEFAULT_SLOTS
    image_decode: Literal["full", "draft"] = "full"
    decode_threads: int | Literal["auto"] = "auto"
    normalization: Literal["quantile", "zscore"] = "quantile"
    state_in_prompt: bool = True
    lowercase: bool = True
    prompt_format: Literal["vla_data", "pi0fast", "pi05"] = "vla_data"
    delta_action_dims: tuple[int, ...] = ()
    mode: Literal["random", "stratified"] = "random"
    shuffle: Literal["random", "shard_block"] = "random"
    shuffle_window: int = 4
    seed: int = 0
    samples_per_epoch: int | None = None
    num_workers: int = 0
    rank: int = 0
    world_size: int = 1
    pin_memory: bool = False
    persistent_workers: bool = False
    use_fast_cache: bool = True
    bad_images: Literal["fail", "mask"] = "fail"
    cache_dir: str | None = None
    cache_limit: int | None = None
    page_budget: int | None = DEFAULT_PAGE_BUDGET
    storage_options: dict[str, Any] | None = field(default=None, repr=False)
    web_templates: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TEMPLATES))
    web_resize_mode: Literal["pad", "crop"] = "pad"
    web_extra_images: Literal["fail", "drop"] = "fail"

    def __post_init__(self) -> None:
        if not isinstance(self.sources, (list, tuple)):
            raise ConfigError("sources", f"must be a list of sources, got {self.sources!r}")
        object.__setattr__(self, "sources", tuple(_source(s, i) for i, s in enumerate(self.sources)))
        if isinstance(self.image_size, int) and not isinstance(self.image_size, bool):
            object.__setattr__(self, "image_size", (self.image_size, self.image_size))
        for name in ("image_size", "image_slots", "delta_action_dims"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.fast_mapping is None:
            object.__setattr__(self, "fast_mapping", "append" if self.text_tokenizer == "byte" else "tail")
        for name, choices in (
            ("fast_mapping", ("tail", "append")),
            ("normalization", ("quantile", "zscore")),
            ("prompt_format", ("vla_data", "pi0fast", "pi05")),
            ("mode", ("random", "stratified")),
            ("shuffle", ("random", "shard_block")),
            ("bad_images", ("fail", "mask")),
            ("image_decode", ("full", "draft")),
            ("web_resize_mode", ("pad", "crop")),
            ("web_extra_images", ("fail", "drop")),
        ):
            value = getattr(self, name)
            if value not in choices:
                raise ConfigError(
                    name,
                    f"must be one of {', '.join(map(repr, choices))}, got {value!r}{closest_choice(value, choices)}",
                )
        check_fields(self)
        if not self.sources:
            raise ConfigError("sources", "the loader needs at least one source")
        if any(s.kind == "robot" for s in self.sources) and not self.fast_tokenizer:
            raise ConfigError(
                "fast_tokenizer",
                "robot sources need fast_tokenizer (a directory from `vla-data tokenizer fit`)",
            )
        for name in ("batch_size", "max_tokens", "horizon", "action_dim", "world_size", "shuffle_window"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.decode_threads != "auto" and self.decode_threads < 1:
            raise ConfigError("decode_threads", f'must be >= 1 or "auto", got {self.decode_threads}')
        if self.cache_limit is not None and self.cache_limit < 0:
            raise ConfigError("cache_limit", f"must be >= 0 bytes (0: no cache), got {self.cache_limit}")
        if self.page_budget is not None and self.page_budget < 0:
            raise ConfigError(
                "page_budget", f"must be >= 0 bytes or null (no budget), got {self.page_budget}"
            )
        if not 0 <= self.rank < self.world_size:
            raise ConfigError("rank", f"{self.rank} is not in 0..world_size-1 ({self.world_size})")
        if self.prompt_format != "vla_data" and not self.state_in_prompt:
            raise ConfigError(
                "state_in_prompt",
                f"prompt_format {self.prompt_format!r} (openpi) always puts the state in the prompt; "
                'set "state_in_prompt": true or "prompt_format": "vla_data"',
            )
        for i, source in enumerate(self.sources):
            if bad := [d for d in source.delta_action_dims or () if not 0 <= d < self.action_dim]:
                raise ConfigError(
                    f"sources[{i}].delta_action_dims",
                    f"dims {bad} are outside 0..action_dim-1 ({self.action_dim})",
                )
        if bad := [d for d in self.delta_action_dims if not 0 <= d < self.action_dim]:
            raise ConfigError(
                "delta_action_dims", f"dims {bad} are outside 0..action_dim-1 ({self.action_dim})"
            )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sources"] = [asdict(s) for s in self.sources]
        return data

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: Any) -> LoaderConfig:
        """A config from its JSON form; unknown or missing keys and wrong types are `ConfigError`s."""
        if not isinstance(data, dict):
            raise ConfigError("", f"a loader config must be a JSON object, got {type(data).__name__}")
        unknown_keys(data, [f.name for f in fields(cls)])
        if "sources" not in data:
            raise ConfigError("", "missing key 'sources' (a list of {kind, paths, weight} objects)")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> LoaderConfig:
        """Read a JSON config; its relative paths resolve against the file's folder, and a path
        that does not exist is an error saying where it was looked for."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise VlaDataError(f"{path}: cannot read loader config ({e})") from e
        try:
            return cls.from_dict(data).resolve_paths(Path(path).absolute().parent)
        except ConfigError as e:
            raise e.in_file(path) from None

    def resolve_paths(self, base: str | Path | None = None) -> LoaderConfig:
        """This config with every relative path made absolute against `base` (default: the
        current folder), after checking that each local path exists."""
        base = Path(base or Path.cwd()).absolute()
        sources = []
        for i, source in enumerate(self.sources):
            paths = []
            for j, value in enumerate(source.paths):
                paths.append(resolve_path(value, base))
                require_path(f"sources[{i}].paths[{j}]", value, paths[-1], base)
            sources.append(replace(source, paths=tuple(paths)))
        changes: dict[str, Any] = {"sources": tuple(sources)}
        if self.fast_tokenizer is not None:
            changes["fast_tokenizer"] = resolve_path(self.fast_tokenizer, base)
            require_path("fast_tokenizer", self.fast_tokenizer, changes["fast_tokenizer"], base)
        if self.cache_dir is not None:
            changes["cache_dir"] = resolve_path(self.cache_dir, base)  # created on first use
        if self.text_tokenizer != "byte":
            changes["text_tokenizer"] = resolve_path(self.text_tokenizer, base)
            require_path("text_tokenizer", self.text_tokenizer, changes["text_tokenizer"], base, folder=False)
        return replace(self, **changes)


def _source(source: SourceConfig | dict, index: int) -> SourceConfig:
    if isinstance(source, SourceConfig):
        return source
    try:
        return SourceConfig.from_dict(source)
    except ConfigError as e:
        raise e.within(f"sources[{index}]") from None
