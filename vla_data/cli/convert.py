"""`vla-data convert FORMAT SRC OUT`."""

from __future__ import annotations

import json

import click

from vla_data.cli.errors import friendly_errors
from vla_data.convert import ConvertOptions
from vla_data.convert import convert as run_convert
from vla_data.images import parse_size
from vla_data.info import describe_dataset


def conversion_options(func):
    """Options every converter shares; they build a `ConvertOptions`."""
    options = [
        click.option(
            "--workers",
            type=int,
            default=1,
            show_default=True,
            help="Processes that read and encode episodes.",
        ),
        click.option("--resume", is_flag=True, help="Continue an interrupted conversion into OUT."),
        click.option(
            "--on-error",
            type=click.Choice(["fail", "skip"]),
            default="fail",
            show_default=True,
            help="fail: stop at the first bad episode, write no manifest. skip: list it in manifest.skipped.",
        ),
        click.option(
            "--image-format",
            type=click.Choice(["jpeg", "png"]),
            default="jpeg",
            show_default=True,
            help="Encoding of raw frames (png is lossless).",
        ),
        click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True),
        click.option(
            "--image-size", default=None, help="Store frames at training size: N or HxW (e.g. 224)."
        ),
        click.option(
            "--resize-mode",
            type=click.Choice(["pad", "crop", "stretch"]),
            default="pad",
            show_default=True,
            help="pad keeps the aspect ratio (openpi resize_with_pad).",
        ),
        click.option(
            "--dtype",
            type=click.Choice(["float32", "float64"]),
            default=None,
            help="Cast float arrays; default keeps the source dtype.",
        ),
        click.option(
            "--shard-size", type=float, default=256, show_default=True, help="Target shard size in MB."
        ),
        click.option(
            "--compression",
            type=click.Choice(["none", "lz4", "zstd"]),
            default="none",
            show_default=True,
            help="Arrow buffer compression; none keeps shards memory-mappable.",
        ),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_options(kw: dict) -> ConvertOptions:
    return ConvertOptions(
        workers=kw.pop("workers"),
        resume=kw.pop("resume"),
        on_error=kw.pop("on_error"),
        image_format=kw.pop("image_format"),
        jpeg_quality=kw.pop("jpeg_quality"),
        image_size=parse_size(kw.pop("image_size")),
        resize_mode=kw.pop("resize_mode"),
        dtype=kw.pop("dtype"),
        shard_bytes=int(kw.pop("shard_size") * 1e6),
        compression=None if kw["compression"] == "none" else kw["compression"],
        progress=False if kw.pop("quiet") else None,
    )


@click.group()
def convert() -> None:
    """Convert a source dataset into vla-data shards (OUT/manifest.json, OUT/shards/*.arrow)."""


def parse_mapping(items: tuple[str, ...], map_file: str | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    if map_file:
        with open(map_file) as f:
            mapping.update(json.load(f))
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not NAME=PATH", param_hint="--map")
        name, path = item.split("=", 1)
        mapping[name.strip()] = path.strip()
    return mapping


@convert.command("hdf5")
@click.argument("src", nargs=-1, required=True)
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--layout",
    type=click.Choice(["aloha", "robomimic", "map"]),
    default="robomimic",
    show_default=True,
    help="aloha: one episode per file; robomimic: data/demo_N groups (LIBERO too); map: your --map paths.",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="NAME=PATH",
    help="Dataset path per canonical name, relative to each episode group: action=actions, observation.state=obs/qpos, observation.images.front=obs/front_image. Implies --layout map.",
)
@click.option(
    "--map-file",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON object {name: path}, same meaning as --map.",
)
@click.option(
    "--episode-glob",
    default=None,
    help="map layout: which groups are episodes (default: every group holding the action path).",
)
@click.option(
    "--state-keys",
    default=None,
    help="robomimic: comma-separated obs keys concatenated into observation.state.",
)
@click.option("--task", default=None, help="Task text for every episode (default: from file attributes).")
@click.option(
    "--fps",
    type=float,
    default=None,
    help="Frames per second (default: file attributes, else 50 aloha / 20 robomimic).",
)
@conversion_options
@friendly_errors
def convert_hdf5(src, out, layout, maps, map_file, episode_glob, state_keys, task, fps, **kw) -> None:
    """Convert HDF5 episode files. SRC: files, folders of *.hdf5/*.h5 files, or globs.

    \b
    Examples:
      vla-data convert hdf5 aloha_episodes/ out/ --layout aloha --task "fold the towel"
      vla-data convert hdf5 lift/image_84.hdf5 out/ --layout robomimic --image-size 224
      vla-data convert hdf5 demo.hdf5 out/ --map action=action --map observation.state=observation
    """
    from vla_data.sources.hdf5 import HDF5Source

    options = build_options(kw)
    mapping = parse_mapping(maps, map_file)
    source = HDF5Source.from_paths(
        list(src),
        layout="map" if mapping else layout,
        mapping=mapping,
        task=task,
        fps=fps,
        state_keys=tuple(k.strip() for k in state_keys.split(",")) if state_keys else None,
        episode_glob=episode_glob,
    )
    manifest = run_convert(source, out, options)
    click.echo(describe_dataset(out))
    if manifest.skipped:
        click.echo(f"{len(manifest.skipped)} episodes skipped (see manifest.json 'skipped')", err=True)
