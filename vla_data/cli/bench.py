"""`vla-data bench ...`: measured speed and memory, medians and ratios from one run."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from vla_data.bench.lerobot import LeRobotBenchOptions
from vla_data.cli.errors import friendly_errors

SCRATCH_DIR = click.option(
    "--dir",
    "work_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Scratch folder (default: a temporary one).",
)
JSON_OUTPUT = click.option("--json", "as_json", is_flag=True)


def int_list(text: str) -> list[int]:
    """`"0,1,2"` -> [0, 1, 2]."""
    return [int(n) for n in text.split(",")]


def echo_result(result: dict | list, as_json: bool, table: Callable[[Any], str]) -> None:
    """Print a bench result as indented JSON (`--json`) or as its table."""
    click.echo(json.dumps(result, indent=1) if as_json else table(result))


def lerobot_option(field: str, *, joined: str | None = None, help: str | None = None):
    """`--field-name` of `bench lerobot`, defaulting to `LeRobotBenchOptions`' value; a tuple default
    is shown and given as its items `joined` (the command parses it back)."""
    default = getattr(LeRobotBenchOptions(), field)
    if joined is None:
        kind = {"type": type(default), "default": default}
    else:
        kind = {"default": joined.join(map(str, default))}
    return click.option("--" + field.replace("_", "-"), **kind, show_default=True, help=help)


@click.group()
def bench() -> None:
    """Benchmarks. Each reports medians and a ratio against a bound measured in the same run."""


@bench.command("convert")
@click.option(
    "--format",
    "source_format",
    type=click.Choice(["hdf5", "rlds", "lerobot", "web"]),
    default="hdf5",
    show_default=True,
)
@click.option(
    "--sizes",
    default="10000,40000",
    show_default=True,
    help="web: comma-separated dataset sizes (samples) to convert.",
)
@click.option(
    "--web-formats",
    default="wds,llava",
    show_default=True,
    help="web: comma-separated source layouts to generate (wds, llava).",
)
@click.option(
    "--frames", type=int, default=20000, show_default=True, help="Total frames of the generated dataset."
)
@click.option("--episode-length", type=int, default=500, show_default=True)
@click.option("--image-size", default="96x128", show_default=True, help="HxW of the two generated cameras.")
@click.option("--workers", default="1,2", show_default=True, help="Comma-separated worker counts to measure.")
@click.option(
    "--executors",
    default="stream",
    show_default=True,
    help="hdf5: comma-separated executors (stream, local, ray).",
)
@click.option(
    "--repeats", type=int, default=1, show_default=True, help="Runs per setting; the median is reported."
)
@SCRATCH_DIR
@JSON_OUTPUT
@friendly_errors
def bench_convert(
    source_format,
    sizes,
    web_formats,
    frames,
    episode_length,
    image_size,
    workers,
    executors,
    repeats,
    work_dir,
    as_json,
) -> None:
    """Conversion speed against a bound measured in the same run.

    \b
    hdf5: frames/s and peak RSS of `convert hdf5` (ALOHA layout, 2 cameras, --frames frames) for
          each --workers value, next to read + JPEG-encode of the same frames.
    rlds: episodes/s and MB/s of `convert rlds` on a generated 200-episode dataset, next to
          reading the same TFRecords with CRC checks only.
    lerobot: frames/s of `convert lerobot` on a generated H.264 video dataset (6,000 frames,
          240x320) for each --workers value, next to PyAV decoding the same videos.
    web:  samples/s and peak RSS of `convert web` for each of --sizes generated samples (one
          --image-size JPEG each; WebDataset tars and LLaVA JSON Lines + image files), next to
          reading + copying the same image bytes alone.
    """
    from vla_data.bench import bench_convert as run
    from vla_data.bench import (
        bench_convert_lerobot,
        bench_convert_rlds,
        format_convert_table,
        format_lerobot_table,
        format_rlds_table,
    )
    from vla_data.images import parse_size

    if source_format == "lerobot":
        result = bench_convert_lerobot(workers=int_list(workers), repeats=max(repeats, 3), work_dir=work_dir)
        echo_result(result, as_json, format_lerobot_table)
        return
    if source_format == "web":
        from vla_data.bench.web import bench_convert_web, format_web_table

        result = bench_convert_web(
            sizes=tuple(int(n) for n in sizes.split(",")),
            formats=tuple(f.strip() for f in web_formats.split(",")),
            image_size=parse_size(image_size),
            repeats=repeats,
            work_dir=work_dir,
        )
        echo_result(result, as_json, format_web_table)
        return
    if source_format == "rlds":
        result = bench_convert_rlds(repeats=max(repeats, 3), work_dir=work_dir)
        echo_result(result, as_json, format_rlds_table)
        return

    result = run(
        frames=frames,
        episode_length=episode_length,
        image_size=parse_size(image_size),
        workers=int_list(workers),
        executors=[e.strip() for e in executors.split(",")],
        repeats=repeats,
        work_dir=work_dir,
    )
    echo_result(result, as_json, format_convert_table)


@bench.command("tokenizer")
@click.option("--mode", type=click.Choice(["default", "compat"]), default="default", show_default=True)
@click.option("--chunks", type=int, default=2000, show_default=True, help="Chunks per shape.")
@click.option("--fit-chunks", type=int, default=100_000, show_default=True)
@click.option("--repeats", type=int, default=5, show_default=True)
@click.option(
    "--fast-plus",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Also measure this published tokenizer (e.g. ../shared/data/fast_plus) on the same chunks.",
)
@click.option(
    "--compare-modes",
    "golden",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Instead: tokens per chunk of default vs compat on golden sets (e.g. ../shared/data/fast_golden).",
)
@JSON_OUTPUT
@friendly_errors
def bench_tokenizer(mode, chunks, fit_chunks, repeats, fast_plus, golden, as_json) -> None:
    """FAST encode/decode chunks/s, batched vs the reference's per-chunk loop (one DCT and one
    tokenizer call per chunk) on held-out 10x7, 30x26, 50x14 chunks, for a fitted tokenizer and
    FAST+ (--fast-plus); the share of encode time spent in BPE, and fit seconds."""
    from vla_data.bench import bench_tokenizer as run
    from vla_data.bench import compare_fast_modes, format_modes_table, format_tokenizer_table

    if golden:
        rows = compare_fast_modes(golden)
        echo_result(rows, as_json, format_modes_table)
        return

    result = run(mode=mode, chunks=chunks, fit_chunks=fit_chunks, repeats=repeats, fast_plus=fast_plus)
    echo_result(result, as_json, format_tokenizer_table)


@bench.command("images")
@click.option("--frames", type=int, default=64, show_default=True, help="Frames per stored size.")
@click.option("--repeats", type=int, default=5, show_default=True)
@JSON_OUTPUT
@friendly_errors
def bench_images(frames, repeats, as_json) -> None:
    """JPEG decoders on the same frames (stored 224x224 and 480x640, resized to 224x224): PIL full
    and draft decode, simplejpeg, PyTurboJPEG, torchvision.io.decode_jpeg (each if importable):
    ms per frame and pixel difference from PIL's full decode."""
    from vla_data.bench.images import bench_images as run
    from vla_data.bench.images import format_images_table

    result = run(frames=frames, repeats=repeats)
    echo_result(result, as_json, format_images_table)


@bench.command("lerobot")
@click.option(
    "--dataset",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A LeRobot v3.0 dataset root to read both ways (default: generate AV1 video under --dir).",
)
@lerobot_option("episodes", help="Generated episodes.")
@lerobot_option("steps", help="Frames per generated episode.")
@lerobot_option("source_size", joined="x", help="HxW of the 2 generated cameras.")
@lerobot_option("image_size", help="Model frame size (square).")
@lerobot_option("batch_size")
@lerobot_option("horizon")
@lerobot_option("batches", help="Batches per timed window.")
@lerobot_option("repeats", help="Timed windows; the median is reported.")
@lerobot_option("workers", joined=",")
@lerobot_option("video_backend", help="LeRobotDataset's video_backend.")
@lerobot_option("torch_threads", help="torch intra-op threads of the main process (workers use 1 each).")
@SCRATCH_DIR
@JSON_OUTPUT
@friendly_errors
def bench_lerobot(dataset, source_size, workers, work_dir, as_json, **settings) -> None:
    """LeRobot's LeRobotDataset (delta_timestamps action chunk, frames resized to --image-size in its
    pipeline) against our loader on the same episodes converted with --image-size: samples/s per
    num_workers and the ratio. Without --dataset, generates a LeRobot v3.0 dataset as lerobot 0.4.4
    writes it (AV1, 2 cameras) under --dir and reuses it on later runs.
    Needs the optional `lerobot` package (see examples/lerobot_venv.sh); without it, says why it
    skipped (exit 0)."""
    from vla_data.bench.lerobot import bench_lerobot as run
    from vla_data.bench.lerobot import format_lerobot_table
    from vla_data.images import parse_size

    options = LeRobotBenchOptions(
        source_size=parse_size(source_size), workers=tuple(int_list(workers)), **settings
    )
    echo_result(run(dataset, work_dir=work_dir, options=options), as_json, format_lerobot_table)


@bench.command("loader")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--horizon", type=int, default=50, show_default=True)
@click.option("--batches", type=int, default=150, show_default=True, help="Batches timed per worker count.")
@click.option(
    "--rss-batches",
    type=int,
    default=1000,
    show_default=True,
    help="Batches drawn with 2 workers while watching their RSS (over a generated dataset of exactly that many batches, so growth with data shows).",
)
@click.option("--workers", default="0,1,2", show_default=True)
@click.option(
    "--image-size",
    default="240x320",
    show_default=True,
    help="HxW the generated frames are stored at (224x224: as after `convert --image-size 224`).",
)
@click.option("--profile", is_flag=True, help="Also print the time per sample of each loader stage.")
@click.option(
    "--uri",
    default=None,
    help="Object storage prefix (e.g. s3://bucket/tmp): compare local, cached (cold, warm) and uncached "
    "reads of a dataset uploaded there (deleted after); credentials from the AWS variables / --endpoint-url.",
)
@JSON_OUTPUT
@friendly_errors
def bench_loader(
    batch_size, horizon, batches, rss_batches, workers, image_size, profile, uri, as_json
) -> None:
    """Loader samples/s and batches/s (2 cameras, freshly generated demo-style data) for each
    worker count, next to decoding + resizing the same images alone, and worker RSS over time.
    --profile adds where a sample's time goes: locate, read, normalize, FAST ids, prompt, image
    decode, collate, IPC. --uri: samples/s and bytes fetched per sample from object storage."""
    from vla_data.bench import bench_loader as run
    from vla_data.bench import format_loader_table
    from vla_data.images import parse_size

    if uri:
        from vla_data.bench.remote import bench_remote_loader, format_remote_table

        result = bench_remote_loader(
            uri,
            batch_size=batch_size,
            horizon=horizon,
            batches=min(batches, 40),
            image_size=parse_size(image_size),
        )
        echo_result(result, as_json, format_remote_table)
        return

    result = run(
        batch_size=batch_size,
        horizon=horizon,
        batches=batches,
        rss_batches=rss_batches,
        workers=int_list(workers),
        image_size=parse_size(image_size),
        profile=profile,
    )
    echo_result(result, as_json, format_loader_table)


@bench.command("scale")
@click.option(
    "--sizes",
    default="1,4,16",
    show_default=True,
    help="Comma-separated multiples of each stage's base size.",
)
@click.option(
    "--stages",
    default=None,
    help="Comma-separated subset of: convert hdf5, convert lerobot v3.0, convert rlds gzip, convert web, "
    "tokenizer fit, tokenizer cache, loader (default: all).",
)
@click.option(
    "--base", type=float, default=1.0, show_default=True, help="Scale every stage's base size (e.g. 0.1)."
)
@click.option(
    "--loader-batches",
    type=int,
    default=1000,
    show_default=True,
    help="Batches the loader stage draws at every size (after its first batch).",
)
@click.option(
    "--loader-steps",
    type=int,
    default=2_000_000,
    show_default=True,
    help="Steps of the generated robot dataset whose loader build + first batch is checked (0: skip).",
)
@SCRATCH_DIR
@JSON_OUTPUT
@friendly_errors
def bench_scale(sizes, stages, base, loader_batches, loader_steps, work_dir, as_json) -> None:
    """Time per item and peak RSS of every stage (convert hdf5 / lerobot v3.0 / rlds gzip / web,
    tokenizer fit / cache, loader) on generated data at each size, each run in a fresh process,
    with the largest/smallest ratios; then a loader over --loader-steps generated steps: build +
    first batch time and main-process peak RSS."""
    from vla_data.bench.scale import bench_scale as run
    from vla_data.bench.scale import format_scale_table

    result = run(
        sizes=int_list(sizes),
        stages=[s.strip() for s in stages.split(",")] if stages else None,
        base=base,
        loader_batches=loader_batches,
        loader_steps=loader_steps,
        work_dir=work_dir,
    )
    echo_result(result, as_json, format_scale_table)
