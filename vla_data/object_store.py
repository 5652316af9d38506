"""Datasets on object storage (s3://, gs://, hdfs://): upload, commit, statistics and merge on the
store itself, so nothing depends on the disk of the machine that started the work.

Objects on S3-like stores appear whole when their upload completes, so "write then rename" is not
needed for atomicity; what matters is the order: shards first, then `episodes.arrow`, then
`manifest.json`, whose presence means the dataset is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from vla_data import __version__
from vla_data.errors import ShardError
from vla_data.resume import check_same_settings
from vla_data.schema import Feature
from vla_data.shards.manifest import (
    EPISODES_FILE,
    MANIFEST_FILE,
    PROGRESS_FILE,
    SHARD_DIR,
    Manifest,
    ShardInfo,
    shard_path,
)
from vla_data.storage import display_uri, filesystem, is_uri

BLOCK = 1 << 24


def remote_filesystem(path: str | Path, storage_options: dict[str, Any] | None = None):
    """(filesystem, inner path) when `path` is on a non-local filesystem, else None."""
    if not is_uri(path):
        return None
    fs, inner = filesystem(path, storage_options)
    return None if isinstance(fs, pafs.LocalFileSystem) else (fs, inner)


def exists(fs, path: str) -> bool:
    return fs.get_file_info(path).type == pafs.FileType.File


def read_bytes(fs, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()


def write_bytes(fs, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as f:
        f.write(data)


def read_manifest(fs, root: str) -> Manifest:
    try:
        return Manifest.from_json(json.loads(read_bytes(fs, f"{root}/{MANIFEST_FILE}")))
    except FileNotFoundError as e:
        raise ShardError(f"{root}: no {MANIFEST_FILE}: not a complete vla-data dataset") from e


def upload_dataset(local: Path, fs, target: str, *, skip_existing: bool = False) -> None:
    """Copy a finished dataset to any pyarrow filesystem; `manifest.json` goes last, so readers
    never see a manifest whose shards are not there yet. `skip_existing` keeps objects already
    uploaded with the right size (an interrupted upload, resumed)."""
    local = Path(local)
    files = sorted(
        p
        for p in local.rglob("*")
        if p.is_file() and p.name != MANIFEST_FILE and not p.name.startswith(PROGRESS_FILE)
    ) + [local / MANIFEST_FILE]
    fs.create_dir(f"{target}/{SHARD_DIR}", recursive=True)  # needed by local filesystems
    for path in files:
        name = f"{target}/{path.relative_to(local).as_posix()}"
        if skip_existing and path.name != MANIFEST_FILE:
            info = fs.get_file_info(name)
            if info.type == pafs.FileType.File and info.size == path.stat().st_size:
                continue
        with open(path, "rb") as src, fs.open_output_stream(name) as dst:
            while block := src.read(BLOCK):
                dst.write(block)


def stats_on_store(fs, root: str, shards: list[ShardInfo], features: dict[str, Feature]) -> dict[str, Any]:
    """Statistics of every numeric feature, reading each shard on the store one batch at a time."""
    from vla_data.shards.shard_stats import stats_from_files

    return stats_from_files([f"{root}/{info.file}" for info in shards], fs.open_input_file, features)


def commit_on_store(fs, root: str, manifest: Manifest, episode_rows: list[dict[str, Any]]) -> Manifest:
    """`episodes.arrow`, statistics from the shards on the store, then `manifest.json` last."""
    from vla_data.shards.episode_rows import EPISODES_SCHEMA, episodes_table

    sink = io.BytesIO()
    with pa.ipc.new_file(sink, EPISODES_SCHEMA) as writer:
        writer.write_table(episodes_table(episode_rows))
    write_bytes(fs, f"{root}/{EPISODES_FILE}", sink.getvalue())
    manifest.stats = stats_on_store(fs, root, manifest.shards, manifest.features)
    manifest.created_by = f"vla-data {__version__}"
    write_bytes(fs, f"{root}/{MANIFEST_FILE}", json.dumps(manifest.to_json(), indent=1).encode())
    return manifest


def merge_on_store(
    fs, inputs: list[str], out: str, *, source: dict[str, Any] | None = None, names: list[str] | None = None
) -> Manifest:
    """`merge_datasets` on one object store: a shard whose episode and task numbers need no change
    (conversion units number their episodes where they land) is copied server side, never
    downloaded; another is fetched to a temporary file, patched like `merge_datasets` does and
    uploaded, one shard at a time. `episodes.arrow` and `manifest.json` are written last."""
    import tempfile

    from vla_data.shards.merge import _check_compatible, place_shard, renumber
    from vla_data.shards.writer import TaskIndex

    if exists(fs, f"{out}/{MANIFEST_FILE}"):
        raise ShardError(f"{display_uri(names[0] if names else out)}: the output already holds a dataset")
    manifests = [read_manifest(fs, root) for root in inputs]
    first = _check_compatible(manifests, names or inputs)
    tasks = TaskIndex()
    shards: list[ShardInfo] = []
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for manifest, root in zip(manifests, inputs, strict=True):
        skipped += manifest.skipped
        if not manifest.num_episodes:
            continue
        episodes = pa.ipc.open_file(pa.py_buffer(read_bytes(fs, f"{root}/{EPISODES_FILE}"))).read_all()
        new_rows, shard_changes = renumber(episodes, manifest, tasks, len(rows), len(shards))
        rows += new_rows
        compression = manifest.source.get("convert_options", {}).get("compression")
        for info, changes in zip(manifest.shards, shard_changes, strict=True):
            file = shard_path(len(shards))
            if not changes:
                fs.copy_file(f"{root}/{info.file}", f"{out}/{file}")  # server side
                shards.append(ShardInfo(file, info.rows, info.episodes, info.bytes, info.sha256))
                continue
            with tempfile.TemporaryDirectory(prefix="vla-data-merge-") as tmp:
                local = Path(tmp) / "in.arrow"
                with fs.open_input_stream(f"{root}/{info.file}") as src, open(local, "wb") as dst:
                    while block := src.read(BLOCK):
                        dst.write(block)
                placed = place_shard(
                    local, Path(tmp), "out.arrow", info, changes, link=False, compression=compression
                )
                with (
                    open(Path(tmp) / "out.arrow", "rb") as src,
                    fs.open_output_stream(f"{out}/{file}") as dst,
                ):
                    while block := src.read(BLOCK):
                        dst.write(block)
            shards.append(ShardInfo(file, placed.rows, placed.episodes, placed.bytes, placed.sha256))
    merged = Manifest(
        fps=first.fps,
        features=first.features,
        tasks=tasks.tasks,
        shards=shards,
        source=source or {"format": "merge", "inputs": names or inputs},
        skipped=skipped,
    )
    return commit_on_store(fs, out, merged, rows)


def staging_dir(out: str) -> Path:
    """Local folder where a stream conversion into `out` is written before its upload (kept until
    the upload finishes, so `--resume` continues either step)."""
    from vla_data.shards.cache import default_cache_dir

    key = hashlib.sha256(display_uri(out).encode()).hexdigest()[:16]
    return default_cache_dir().parent / "staging" / key


def _check_target(fs, root: str, out: str, options, settings: dict[str, Any]) -> Manifest | None:
    """The finished dataset at `root` when resuming one; errors for a target that is not ours."""
    if exists(fs, f"{root}/{MANIFEST_FILE}"):
        if options.resume:
            manifest = read_manifest(fs, root)
            check_same_settings(display_uri(out), manifest.source, settings, "the finished conversion")
            return manifest
        raise ShardError(
            f"{display_uri(out)} already holds a complete dataset; choose another OUT or delete it"
        )
    listing = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    if listing and not options.resume:
        raise ShardError(
            f"{display_uri(out)} is not empty (an interrupted conversion?); pass --resume to continue it "
            "or delete it"
        )
    return None


def convert_stream_to_store(source, out: str, options, **kwargs) -> Manifest:
    """A stream conversion into a local staging folder, uploaded (manifest last) to `out`."""
    import shutil
    from dataclasses import replace

    from vla_data.convert import convert

    fs, root = remote_filesystem(out, options.storage_options)
    settings = {**source.describe(), "convert_options": options.describe()}
    if (done := _check_target(fs, root, out, options, settings)) is not None:
        return done
    staging = staging_dir(out)
    if not options.resume and staging.exists():
        shutil.rmtree(staging)
    local = replace(options, resume=options.resume and staging.exists(), storage_options=None)
    manifest = convert(source, staging, local, **kwargs)
    upload_dataset(staging, fs, root, skip_existing=True)
    shutil.rmtree(staging)
    return manifest


def convert_unit_to_store(
    source, refs: list[dict[str, Any]], out: str, first: int, options, feature_names, image_sizes=None
) -> str:
    """One unit converted on this machine's temporary disk and uploaded to `out` on the store
    (manifest last); a unit whose manifest is already there is done."""
    import tempfile
    from dataclasses import replace

    from vla_data.convert import convert

    fs, root = remote_filesystem(out, options.storage_options)
    if exists(fs, f"{root}/{MANIFEST_FILE}"):
        return out
    unit_options = replace(
        options, executor="stream", workers=1, resume=False, progress=False, storage_options=None
    )
    with tempfile.TemporaryDirectory(prefix="vla-data-unit-") as tmp:
        kwargs = {"refs": refs, "feature_names": feature_names, "image_sizes": image_sizes}
        kwargs["first_episode_index"] = first
        convert(source, Path(tmp) / "unit", unit_options, allow_empty=True, **kwargs)
        upload_dataset(Path(tmp) / "unit", fs, root)
    return out


def convert_units_to_store(source, out: str, options) -> Manifest:
    """Units write straight to `OUT/.units/unit-NNNNN/` on the store from wherever they run (local
    pool or Ray workers on other machines); the merge then runs on the store."""
    from vla_data.shards.merge import STAGING_DIR
    from vla_data.units import run_units

    fs, root = remote_filesystem(out, options.storage_options)
    description = {**source.describe(), "convert_options": options.describe()}
    if (done := _check_target(fs, root, out, options, description)) is not None:
        return done
    base, _, query = out.partition("?")
    units = run_units(
        source,
        lambda k: f"{base.rstrip('/')}/{STAGING_DIR}/unit-{k:05d}" + (f"?{query}" if query else ""),
        options,
    )
    unit_roots = [remote_filesystem(u, options.storage_options)[1] for u in units]
    manifest = merge_on_store(fs, unit_roots, root, source=description)
    fs.delete_dir(f"{root}/{STAGING_DIR}")
    return manifest


def merge_uris(inputs: list[str], out: str, *, source: dict[str, Any] | None = None) -> Manifest:
    """`merge_datasets` for inputs and output on one object store (credentials from the
    environment)."""
    targets = [remote_filesystem(p) for p in [*inputs, out]]
    if not all(targets) or len({(type(t[0]).__name__, t[1].split("/")[0]) for t in targets}) != 1:
        raise ShardError(
            "merge on object storage needs every input and the output in one bucket (shards are copied "
            "server side); copy the inputs there first, or merge local folders"
        )
    fs = targets[-1][0]
    names = [display_uri(p) for p in inputs]
    return merge_on_store(fs, [t[1] for t in targets[:-1]], targets[-1][1], source=source, names=names)


def recompute_stats_on_store(root: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    fs, inner = remote_filesystem(root, storage_options)
    manifest = read_manifest(fs, inner)
    manifest.stats = stats_on_store(fs, inner, manifest.shards, manifest.features)
    write_bytes(fs, f"{inner}/{MANIFEST_FILE}", json.dumps(manifest.to_json(), indent=1).encode())
    return manifest.stats
