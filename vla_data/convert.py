"""Source -> shards: reading in worker processes, image encoding, skipping, resume and progress."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import signal
import sys
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from vla_data.episode import Episode
from vla_data.errors import SourceError
from vla_data.frame_check import frame_size, structure_problem
from vla_data.images import (
    ImageFormat,
    ResizeMode,
    decode_image,
    encode_image,
    image_format_of,
    resize,
)
from vla_data.object_store import (  # noqa: F401 (upload_dataset: public here too)
    convert_stream_to_store,
    convert_units_to_store,
    remote_filesystem,
    upload_dataset,
)
from vla_data.resume import check_same_settings, note_fresh_start
from vla_data.schema import IMAGE_PREFIX, Feature, array_feature, image_feature
from vla_data.shards.manifest import MANIFEST_FILE, PROGRESS_FILE, Manifest, load_manifest
from vla_data.shards.writer import DEFAULT_SHARD_BYTES, ShardWriter
from vla_data.sources import Source
from vla_data.storage import filesystem, is_uri

OnError = Literal["fail", "skip"]
Executor = Literal["stream", "local", "ray"]


@dataclass(frozen=True)
class ConvertOptions:
    """How a source is converted. `image_size` is (height, width) or None to keep the source size."""

    workers: int = 1
    resume: bool = False
    on_error: OnError = "fail"
    image_format: ImageFormat = "jpeg"
    jpeg_quality: int = 95
    image_size: tuple[int, int] | None = None
    resize_mode: ResizeMode = "pad"
    dtype: str | None = None  # cast floating arrays, e.g. "float32"; None keeps the source dtype
    shard_bytes: int = DEFAULT_SHARD_BYTES
    compression: str | None = None  # Arrow IPC buffer compression ("lz4", "zstd"); None = mmap-able
    progress: bool | None = None  # None: show a bar only on a terminal
    # stream: one writer, `workers` processes prepare episodes (output identical for any workers).
    # local / ray: units of `unit_episodes` episodes converted in a process pool or on Ray, then
    # merged (output identical for either executor and any workers).
    executor: Executor = "stream"
    unit_episodes: int = 64
    address: str | None = None  # Ray cluster address; None starts a local one
    # pyarrow filesystem options of a remote OUT (endpoint_url, access_key, ...); never printed or
    # recorded. Default: the AWS environment variables (which `--endpoint-url` sets).
    storage_options: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', got {self.on_error!r}")
        if self.image_format not in ("jpeg", "png"):
            raise ValueError(f"image_format must be 'jpeg' or 'png', got {self.image_format!r}")
        if self.executor not in ("stream", "local", "ray"):
            raise ValueError(f"executor must be stream, local or ray, got {self.executor!r}")
        if self.unit_episodes < 1:
            raise ValueError(f"unit_episodes must be >= 1, got {self.unit_episodes}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")

    def describe(self) -> dict[str, Any]:
        return {
            "image_format": self.image_format,
            "jpeg_quality": self.jpeg_quality,
            "image_size": list(self.image_size) if self.image_size else None,
            "resize_mode": self.resize_mode,
            "dtype": self.dtype,
            "shard_bytes": self.shard_bytes,
            "compression": self.compression,
            **({"unit_episodes": self.unit_episodes} if self.executor != "stream" else {}),
        }


def prepare_episode(episode: Episode, options: ConvertOptions) -> Episode:
    """Encode (and resize) raw frames and cast dtypes. Encoded frames are copied byte for byte
    unless a resize is asked for."""
    images: dict[str, list[bytes]] = {}
    original: dict[str, tuple[int, int]] = {}
    stored: dict[str, tuple[int, int]] = {}
    for camera, frames in episode.images.items():
        if isinstance(frames, list) and not options.image_size:
            for step, data in enumerate(frames):
                if problem := structure_problem(data):
                    raise _image_error(
                        episode, camera, step, f"bytes are not a complete JPEG or PNG image: {problem}"
                    )
                _same_size(episode, camera, step, frame_size(data), stored)
            images[camera] = list(frames)
            continue
        if isinstance(frames, list):  # encoded, to be resized
            frames = (_decode(b, episode, camera, i) for i, b in enumerate(frames))
        # raw frames: a uint8 [T, H, W, 3] array or a stream of them (video), encoded one by one
        encoded = []
        for step, frame in enumerate(frames):
            if not encoded:
                original[camera] = tuple(frame.shape[:2])
            if options.image_size:
                frame = resize(frame, *options.image_size, options.resize_mode)
            _same_size(episode, camera, step, tuple(frame.shape[:2]), stored)
            encoded.append(encode_image(frame, options.image_format, options.jpeg_quality))
        images[camera] = encoded
    arrays = episode.arrays
    if options.dtype:
        target = np.dtype(options.dtype)
        arrays = {
            k: v.astype(target) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in arrays.items()
        }
    return replace(
        episode, arrays=arrays, images=images, original_image_sizes=original, stored_image_sizes=stored
    )


def _same_size(episode: Episode, camera: str, step: int, size, stored: dict[str, tuple[int, int]]) -> None:
    """Every frame of a camera has the size of its first frame (the stored size, after any resize)."""
    if size is None:
        return
    first = stored.setdefault(camera, tuple(size))
    if tuple(size) != first:
        raise _image_error(
            episode,
            camera,
            step,
            f"frame is {size[0]}x{size[1]}, step 0 is {first[0]}x{first[1]}; pass --image-size HxW to "
            "store every frame at one size",
        )


def check_image_sizes(episode: Episode, expected: dict[str, tuple[int, int]]) -> None:
    """The episode's cameras have the dataset's frame size (that of its first episode): an error naming
    the source file, episode, camera and both sizes, handled by `--on-error` like any bad episode."""
    for camera, size in episode.stored_image_sizes.items():
        want = expected.get(camera)
        if want is not None and tuple(want) != tuple(size):
            raise SourceError(
                f"frames are {size[0]}x{size[1]} (height x width), the dataset's earlier episodes store "
                f"{want[0]}x{want[1]}; pass --image-size {want[0]}x{want[1]} (or any HxW) to resize every "
                "episode to one size",
                file=episode.source_ref.get("file", "?"),
                episode=episode.source_ref.get("episode", episode.index),
                key=episode.key_name(IMAGE_PREFIX + camera),
            )


def image_sizes_of(features: dict[str, Feature]) -> dict[str, tuple[int, int]]:
    """camera -> (height, width) stored, from a dataset's image features."""
    return {
        name[len(IMAGE_PREFIX) :]: (f.height, f.width)
        for name, f in features.items()
        if f.kind == "image" and f.height and f.width
    }


def _image_error(episode: Episode, camera: str, step: int, reason: str) -> SourceError:
    return SourceError(
        f"step {step}: {reason}",
        file=episode.source_ref.get("file", "?"),
        episode=episode.source_ref.get("episode", episode.index),
        key=episode.key_name(IMAGE_PREFIX + camera),
    )


def _decode(data: bytes, episode: Episode, camera: str, step: int) -> np.ndarray:
    try:
        return decode_image(data)
    except Exception as e:  # PIL raises several types for corrupt data
        raise _image_error(episode, camera, step, f"image bytes cannot be decoded ({e})") from e


def infer_features(episode: Episode, names: dict[str, tuple[str, ...]] | None = None) -> dict[str, Feature]:
    """The dataset's features, from its first prepared episode."""
    features = {
        name: array_feature(name, values, (names or {}).get(name)) for name, values in episode.arrays.items()
    }
    for camera, frames in episode.images.items():
        height, width = _decode(frames[0], episode, camera, 0).shape[:2]
        feature = image_feature(
            camera, image_format_of(frames[0]), height, width, episode.original_image_sizes.get(camera)
        )
        features[feature.name] = feature
    return features


def _read_prepared(source: Source, ref: dict[str, Any], options: ConvertOptions) -> Episode | SourceError:
    """The prepared episode, or the `SourceError` that made it unreadable.

    Any other failure inside a reader (a numpy, pyarrow or h5py error on unexpected data) becomes a
    `SourceError` naming the file and episode, so it obeys `--on-error` like every other bad episode.
    """
    try:
        return prepare_episode(source.read(ref), options)
    except SourceError as e:
        return e
    except (MemoryError, RecursionError):
        raise
    except Exception as e:
        return reader_failure(ref, e)


def reader_failure(ref: dict[str, Any], error: Exception) -> SourceError:
    """An unexpected exception from a reader, as a `SourceError` naming the episode's file."""
    return SourceError(
        f"the reader failed with {type(error).__name__}: {error} (the data is not what the reader expects; "
        "skip such episodes with --on-error skip)",
        file=str(ref.get("file", ref.get("path", "?"))),
        episode=ref.get("episode", ref.get("index")),
        key=ref.get("key"),
    )


_WORKER: dict[str, Any] = {}  # the source and options of this worker process, sent once at its start


def _init_worker(source: Source, options: ConvertOptions) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the main process; no worker tracebacks
    _WORKER["source"], _WORKER["options"] = source, options


def _read_in_worker(ref: dict[str, Any]) -> Episode | SourceError:
    """Worker task: only the small episode reference travels per task, never the source."""
    return _read_prepared(_WORKER["source"], ref, _WORKER["options"])


def _prepared_episodes(source: Source, refs: list[dict[str, Any]], start: int, options: ConvertOptions):
    """(position, episode or error) in source order; at most 2 x workers episodes are in flight."""
    if options.workers == 1:
        for position in range(start, len(refs)):
            yield position, _read_prepared(source, refs[position], options)
        return
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(
        options.workers, mp_context=context, initializer=_init_worker, initargs=(source, options)
    ) as pool:
        pending: deque = deque()
        position = start
        while position < len(refs) or pending:
            while position < len(refs) and len(pending) < 2 * options.workers:
                pending.append((position, pool.submit(_read_in_worker, refs[position])))
                position += 1
            done_position, future = pending.popleft()
            try:
                result = future.result()
            except cf.process.BrokenProcessPool as e:
                raise RuntimeError(
                    f"a conversion worker died while reading {refs[done_position]} (out of memory? a script that "
                    "calls convert() with workers > 1 needs an `if __name__ == '__main__':` guard)"
                ) from e
            yield done_position, result


def convert(
    source: Source,
    out: str | Path,
    options: ConvertOptions = ConvertOptions(),
    *,
    feature_names: dict[str, tuple[str, ...]] | None = None,
    refs: list[dict[str, Any]] | None = None,
    allow_empty: bool = False,
    image_sizes: dict[str, tuple[int, int]] | None = None,
    first_episode_index: int = 0,
) -> Manifest:
    """Convert every episode of `source` into a dataset at `out` and return its manifest.

    Every episode's frames must have the size of the first episode's (or `image_sizes`, camera ->
    (height, width), which conversion units get from the dataset's first episode).

    With `on_error="skip"`, an episode whose reading raises `SourceError` is listed in
    `manifest.skipped` and the rest is converted; with "fail" the first one stops the conversion
    and no manifest is written. `resume=True` continues an interrupted conversion of the same
    source from its last closed shard. `first_episode_index` is for conversion units: their
    episodes are numbered where they land in the merged dataset.
    """
    if hasattr(source, "configure"):  # a source that checks or adopts the options (web: per-sample skip)
        source = source.configure(options)
    if is_uri(out):
        if remote_filesystem(out, options.storage_options):
            if options.executor != "stream":
                return convert_units_to_store(source, str(out), options)
            kwargs = {
                "feature_names": feature_names,
                "refs": refs,
                "allow_empty": allow_empty,
                "image_sizes": image_sizes,
            }
            return convert_stream_to_store(source, str(out), options, **kwargs)
        out = Path(filesystem(out)[1])
    if options.resume and not Path(out).exists():
        note_fresh_start(out)
    if options.executor != "stream":
        from vla_data.units import convert_in_units

        return convert_in_units(source, out, options)
    description = {**source.describe(), "convert_options": options.describe()}
    if options.resume and (Path(out) / MANIFEST_FILE).exists():
        manifest = load_manifest(out)
        check_same_settings(out, manifest.source, description, "the finished conversion")
        (Path(out) / PROGRESS_FILE).unlink(missing_ok=True)  # killed after the commit: already complete
        return manifest
    refs = source.episode_refs() if refs is None else refs
    if feature_names is None and hasattr(source, "feature_names"):
        feature_names = source.feature_names()
    if not refs and not allow_empty:
        raise SourceError("no episodes found", file=str(description.get("path")))
    show = sys.stderr.isatty() if options.progress is None else options.progress
    writer = ShardWriter(
        out,
        source=description,
        target_bytes=options.shard_bytes,
        compression=options.compression,
        resume=options.resume,
        first_episode_index=first_episode_index,
    )
    try:
        with tqdm(
            total=len(refs), initial=writer.consumed, unit="episode", desc="convert", disable=not show
        ) as bar:
            for position, result in _prepared_episodes(source, refs, writer.consumed, options):
                try:
                    if isinstance(result, SourceError):
                        raise result
                    if image_sizes or writer.features:
                        check_image_sizes(result, image_sizes or image_sizes_of(writer.features))
                    if writer.features is None:
                        writer.set_features(result.fps, infer_features(result, feature_names))
                    writer.skip_samples(result.skipped_samples, position=position)
                    writer.write(result, position=position)
                except SourceError as e:
                    if options.on_error == "fail":
                        raise
                    writer.skip(refs[position], str(e), position=position)
                bar.update(1)
        return writer.finish(allow_empty=allow_empty)
    except BaseException:
        writer.abandon()
        raise
