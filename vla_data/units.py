"""Conversion as units of work: each unit (a range of episodes) writes its own small dataset under
`OUT/.units/`, then a merge writes the final shards, `episodes.arrow` and `manifest.json`.

The same units run in-process, in a local process pool, or as Ray tasks; the output depends only
on the unit size, never on the executor. Finished units are kept until the merge, so `--resume`
redoes only unfinished ones.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import shutil
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vla_data.errors import ShardError
from vla_data.resume import check_same_settings, check_unit
from vla_data.shards.manifest import EPISODES_FILE, MANIFEST_FILE, SHARD_DIR, Manifest, load_manifest
from vla_data.shards.merge import STAGING_DIR, merge_datasets


def unit_dir(out: Path, index: int) -> Path:
    return out / STAGING_DIR / f"unit-{index:05d}"


def convert_unit(
    source, refs: list[dict[str, Any]], out: str, first: int, options, feature_names, image_sizes=None
) -> str:
    """One unit: a plain conversion of `refs` into `out` (resumed if a previous run started it).
    Its episodes are numbered from `first`, their position in the source (final unless an earlier
    unit skips episodes), so the merge can keep its shards as they are. `image_sizes` are the
    dataset's frame sizes (from its first episode), so a unit whose episodes store another size
    fails or skips them exactly as the stream executor does. A unit on object storage is converted
    on this machine's temporary disk and uploaded."""
    from vla_data.convert import convert
    from vla_data.object_store import convert_unit_to_store, remote_filesystem

    if remote_filesystem(out, options.storage_options):
        return convert_unit_to_store(source, refs, out, first, options, feature_names, image_sizes)
    unit_options = replace(options, executor="stream", workers=1, resume=Path(out).exists(), progress=False)
    convert(
        source,
        out,
        unit_options,
        refs=refs,
        feature_names=feature_names,
        allow_empty=True,
        image_sizes=image_sizes,
        first_episode_index=first,
    )
    return out


def first_image_sizes(source, refs: list[dict[str, Any]], options) -> dict[str, tuple[int, int]] | None:
    """The stored frame sizes of the first episode that converts (the one that fixes the dataset's
    features, as in the stream executor); None with `--image-size` (every frame gets that size)."""
    from vla_data.convert import _read_prepared

    if options.image_size:
        return None
    for ref in refs:
        episode = _read_prepared(source, ref, options)
        if not isinstance(episode, Exception):
            return episode.stored_image_sizes
    return None


def convert_in_units(source, out: str | Path, options) -> Manifest:
    out = Path(out)
    settings = {**source.describe(), "convert_options": options.describe()}
    if (out / MANIFEST_FILE).exists():
        if options.resume:
            manifest = load_manifest(out)
            check_same_settings(out, manifest.source, settings, "the finished conversion")
            return manifest
        raise ShardError(f"{out} already holds a complete dataset; choose another OUT or delete it")
    staged = (out / STAGING_DIR).exists()  # beside it: what a merge that died had written
    if out.exists() and any(
        p.name != STAGING_DIR and not (staged and p.name in MERGE_OUTPUTS) for p in out.iterdir()
    ):
        raise ShardError(f"{out} is not empty and holds no vla-data conversion; choose an empty OUT")
    if (out / STAGING_DIR).exists() and not options.resume:
        raise ShardError(
            f"{out} holds an interrupted conversion; pass --resume to continue it or delete the folder"
        )
    units = run_units(
        source,
        lambda k: unit_dir(out, k),
        options,
        check=lambda refs, unit: check_unit(out, Path(unit), settings, refs),
    )
    _drop_partial_merge(out)
    manifest = merge_datasets(units, out, source=settings, link=True)
    shutil.rmtree(out / STAGING_DIR)
    return manifest


def run_units(source, unit_out, options, check=None) -> list[str]:
    """Convert `source` in units of `options.unit_episodes` episodes, unit k into `unit_out(k)`, on
    the options' executor; the units' outputs, in order. `check(refs, unit)` runs for every unit
    before any starts (resume rules)."""
    refs = source.episode_refs()
    feature_names = source.feature_names() if hasattr(source, "feature_names") else None
    size = options.unit_episodes
    jobs = [
        (refs[start : start + size], str(unit_out(k)), start)
        for k, start in enumerate(range(0, len(refs), size))
    ]
    for refs_of_unit, unit, _ in jobs if check else ():
        check(refs_of_unit, unit)
    sizes = first_image_sizes(source, refs, options)
    shared = (source, options, feature_names, sizes)  # sent once per worker, not once per unit
    show = sys.stderr.isatty() if options.progress is None else options.progress
    with tqdm(total=len(jobs), unit="unit", desc=f"convert ({options.executor})", disable=not show) as bar:
        if options.executor == "ray":
            _run_on_ray(jobs, shared, options, bar)
        else:
            _run_locally(jobs, shared, options.workers, bar)
    return [job[1] for job in jobs]


MERGE_OUTPUTS = {SHARD_DIR, EPISODES_FILE, EPISODES_FILE + ".tmp", MANIFEST_FILE + ".tmp"}


def _drop_partial_merge(out: Path) -> None:
    """Remove what a merge killed midway wrote; the units it read are intact (shards are linked
    only when unchanged, patched ones are copies), so the merge simply runs again."""
    if (out / SHARD_DIR).exists():
        shutil.rmtree(out / SHARD_DIR)
    for name in MERGE_OUTPUTS - {SHARD_DIR}:
        (out / name).unlink(missing_ok=True)


_SHARED: tuple = ()  # (source, options, feature_names, image_sizes) of this worker process


def _init_worker(shared: tuple) -> None:
    global _SHARED
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the main process; no worker tracebacks
    _SHARED = shared


def _unit_in_worker(refs: list[dict[str, Any]], out: str, first: int) -> str:
    return convert_unit(_SHARED[0], refs, out, first, *_SHARED[1:])


def _run_locally(jobs: list[tuple], shared: tuple, workers: int, bar) -> None:
    """Run every unit; the first failure cancels the units still queued and is raised at once."""
    if workers == 1:
        for refs, out, first in jobs:
            convert_unit(shared[0], refs, out, first, *shared[1:])
            bar.update(1)
        return
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(shared,)
    ) as pool:
        futures = [pool.submit(_unit_in_worker, *job) for job in jobs]
        try:
            for future in cf.as_completed(futures):
                future.result()
                bar.update(1)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # units already running finish; no new one starts
            raise


def _run_on_ray(jobs: list[tuple], shared: tuple, options, bar) -> None:
    try:
        import ray
    except ImportError as e:
        raise ImportError("--executor ray needs Ray: pip install 'vla-data[ray]'") from e
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=options.address,
            num_cpus=None if options.address else options.workers,
            include_dashboard=False,
            log_to_driver=False,
        )
    try:
        task = ray.remote(num_cpus=1)(convert_unit)
        source = ray.put(shared[0])  # stored once in the object store, not once per unit
        pending = [task.remote(source, refs, out, first, *shared[1:]) for refs, out, first in jobs]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ray.get(done)  # re-raises the unit's error (a subclass of the original, e.g. SourceError)
                bar.update(len(done))
        except BaseException:
            for ref in pending:  # fail fast: queued units never start
                ray.cancel(ref)
            raise
    finally:
        if started:
            ray.shutdown()
