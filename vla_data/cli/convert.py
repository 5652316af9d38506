"""`vla-data convert FORMAT SRC OUT`."""

from __future__ import annotations

import json

import click

from vla_data.cli.errors import explain_interrupt, friendly_errors
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
        click.option(
            "--executor",
            type=click.Choice(["stream", "local", "ray"]),
            default="stream",
            show_default=True,
            help="stream: one writer fed by --workers processes. local/ray: units of --unit-episodes converted in a process pool or as Ray tasks, then merged (same output either way).",
        ),
        click.option(
            "--unit-episodes",
            type=int,
            default=64,
            show_default=True,
            help="Episodes per unit of work (local/ray executors).",
        ),
        click.option(
            "--address",
            default=None,
            help="Ray cluster address for --executor ray (default: start a local Ray).",
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
        executor=kw.pop("executor"),
        unit_episodes=kw.pop("unit_episodes"),
        address=kw.pop("address"),
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
@click.argument("src", nargs=-1)
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
    help="Frames per second (default: file attributes, else 50 aloha / 20 robomimic / 10 map, with a warning).",
)
@conversion_options
@friendly_errors
@explain_interrupt("out")
def convert_hdf5(src, out, layout, maps, map_file, episode_glob, state_keys, task, fps, **kw) -> None:
    """Convert HDF5 episode files. SRC: files, folders of *.hdf5/*.h5 files, or globs.

    \b
    Examples:
      vla-data convert hdf5 aloha_episodes/ out/ --layout aloha --task "fold the towel"
      vla-data convert hdf5 lift/image_84.hdf5 out/ --layout robomimic --image-size 224
      vla-data convert hdf5 demo.hdf5 out/ --map action=action --map observation.state=observation
    """
    from vla_data.assumptions import hdf5_fps_warning
    from vla_data.sources.hdf5 import HDF5Source

    if not src:  # click gives a lone argument to OUT, the last one
        raise click.UsageError(
            f"Missing argument 'OUT': give SRC... then OUT, the new dataset folder "
            f"(e.g. vla-data convert hdf5 {out} {out.rstrip('/')}_shards/)"
        )
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
    if warning := hdf5_fps_warning(source):
        click.echo(warning, err=True)
    run_and_report(source, out, options)


@convert.command("rlds")
@click.argument("src")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--split",
    "splits",
    multiple=True,
    help="Split to convert (repeatable); default: every split in dataset_info.json.",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="NAME=PATH",
    help="Canonical name -> TFDS feature path: action=steps/action, observation.state=steps/observation/proprio, observation.images.front=steps/observation/image_0, task=steps/language_instruction.",
)
@click.option(
    "--action-keys",
    default=None,
    help="Comma-separated TFDS paths concatenated into `action`, in this order (e.g. DROID steps/action_dict/joint_velocity,steps/action_dict/gripper_velocity).",
)
@click.option(
    "--preset",
    type=click.Choice(["bridge"]),
    default=None,
    help="Known Open X-Embodiment layout (bridge: drops the empty image_3 and the 512-d language embedding).",
)
@click.option(
    "--fps",
    type=float,
    default=None,
    help="The dataset's control frequency; required unless dataset_info.json records it (TFDS usually does not).",
)
@click.option(
    "--task", default=None, help="Task text for every episode (default: steps/language_instruction)."
)
@conversion_options
@friendly_errors
@explain_interrupt("out")
def convert_rlds(src, out, splits, maps, action_keys, preset, fps, task, **kw) -> None:
    """Convert an RLDS/TFDS dataset (no TensorFlow needed). SRC: a TFDS version folder
    `<name>/<version>/` with dataset_info.json, features.json and *.tfrecord-XXXXX-of-YYYYY files.

    Both CRCs of every record are checked; encoded step images are copied byte for byte.

    \b
    Examples:
      vla-data convert rlds ~/tensorflow_datasets/bridge_dataset/1.0.0 out/ --preset bridge --fps 5
      vla-data convert rlds droid/1.0.0 out/ --action-keys steps/action_dict/cartesian_position,steps/action_dict/gripper_position
    """
    from vla_data.assumptions import recorded_rlds_fps
    from vla_data.sources.rlds import RLDSSource

    fps = fps or recorded_rlds_fps(src)
    if fps is None:
        raise click.UsageError(
            f"Missing option '--fps': {src}/dataset_info.json records no frame rate; give the robot's "
            "control frequency (e.g. --fps 5 for Bridge, --fps 20 for robosuite)"
        )
    options = build_options(kw)
    source = RLDSSource.from_path(
        src,
        splits=tuple(splits),
        mapping=parse_mapping(maps, None),
        action_keys=tuple(k.strip() for k in action_keys.split(",")) if action_keys else (),
        preset=preset,
        fps=fps,
        task=task,
    )
    run_and_report(source, out, options)


def run_and_report(source, out: str, options: ConvertOptions) -> None:
    """Convert, describe the result, and warn about what the data leaves unsaid."""
    from vla_data.assumptions import empty_task_warning
    from vla_data.shards import ShardDataset
    from vla_data.splits import source_splits, write_splits
    from vla_data.storage import is_uri

    manifest = run_convert(source, out, options)
    click.echo(describe_dataset(out))
    if manifest.skipped:
        click.echo(f"{len(manifest.skipped)} episodes skipped (see manifest.json 'skipped')", err=True)
    if warning := empty_task_warning(out):
        click.echo(warning, err=True)
    if not is_uri(out) and (splits := source_splits(ShardDataset(out))):
        write_splits(out, splits, {"from": "source"})
        click.echo(
            "splits kept from the source in splits.json: "
            + ", ".join(f"{n} {len(e)}" for n, e in splits.items())
        )


def parse_cameras(items: tuple[str, ...]) -> dict[str, str]:
    cameras = {}
    for item in items:
        key, _, name = item.partition("=")
        cameras[key.strip()] = (name or key.removeprefix("observation.images.")).strip()
    return cameras


@convert.command("lerobot")
@click.argument("src")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--action-key", default=None, help="Action column (default: action, else actions).")
@click.option("--state-key", default=None, help="State column (default: observation.state, else state).")
@click.option(
    "--camera",
    "cameras",
    multiple=True,
    metavar="KEY[=NAME]",
    help="Image/video feature to convert, optionally renamed (repeatable); default: all of them.",
)
@click.option(
    "--drop-camera",
    "drop_cameras",
    multiple=True,
    metavar="KEY",
    help="Convert without this camera (e.g. when its videos are missing).",
)
@click.option(
    "--tolerance",
    type=float,
    default=None,
    help="Max distance in seconds between a timestamp and its video frame (default: half a frame period).",
)
@conversion_options
@friendly_errors
@explain_interrupt("out")
def convert_lerobot(src, out, action_key, state_key, cameras, drop_cameras, tolerance, **kw) -> None:
    """Convert a LeRobot dataset (codebase v2.1 or v3.0) from its local root folder SRC.

    Images stored in the parquet are copied byte for byte; video frames (AV1, H.264, ...) are
    decoded once with PyAV and encoded as --image-format. A missing parquet or video file is an
    error naming it (or the episode is skipped with --on-error skip).

    \b
    Examples:
      vla-data convert lerobot ~/lerobot/aloha_sim_insertion_human out/ --workers 2 --image-size 224
      vla-data convert lerobot open50/ out/ --action-key actions --state-key state --camera image=front
    """
    from vla_data.sources.lerobot import LeRobotSource

    options = build_options(kw)
    source = LeRobotSource.from_path(
        src,
        action_key=action_key,
        state_key=state_key,
        cameras=parse_cameras(cameras),
        drop_cameras=tuple(drop_cameras),
        tolerance=tolerance,
    )
    run_and_report(source, out, options)


@convert.command("web")
@click.argument("src", type=click.Path(exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "web_format",
    type=click.Choice(["auto", "llava", "hf", "wds", "coco", "refcoco", "jsonl"]),
    default="auto",
    show_default=True,
    help="auto: told from the files when unambiguous.",
)
@click.option(
    "--field",
    "field_names",
    multiple=True,
    metavar="NAME=FIELD",
    help="Field name of a variant, e.g. --field answer=caption --field conversations=messages "
    "(names: id image images conversations role text texts question answer kind caption bbox phrase file_name).",
)
@click.option(
    "--kind",
    type=click.Choice(["caption", "vqa", "detection", "chat"]),
    default=None,
    help="Kind of every sample; picks the loader's prompt template. Plain rows: vqa (with a warning) "
    "unless --kind or --kind-field says; conversations: chat.",
)
@click.option("--image-field", default=None, help="Same as --field image=FIELD.")
@click.option("--prompt-field", default=None, help='Same as --field question=FIELD ("" for none).')
@click.option("--answer-field", default=None, help="Same as --field answer=FIELD.")
@click.option("--kind-field", default=None, help="Field holding caption|vqa|detection|chat per sample.")
@click.option(
    "--image-root",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Folder that image paths are relative to (default: next to SRC; COCO: ../<split>/).",
)
@click.option("--split", default="train", show_default=True, help="Split of a saved DatasetDict.")
@click.option(
    "--bbox-format",
    type=click.Choice(["xywh", "xyxy"]),
    default="xywh",
    show_default=True,
    help="RefCOCO boxes: COCO's [x, y, w, h] or [x0, y0, x1, y1], in pixels.",
)
@click.option(
    "--group-size",
    type=int,
    default=256,
    show_default=True,
    help="Samples per stored group (memory holds one group per worker).",
)
@conversion_options
@friendly_errors
@explain_interrupt("out")
def convert_web(
    src,
    out,
    web_format,
    field_names,
    kind,
    image_field,
    prompt_field,
    answer_field,
    kind_field,
    image_root,
    split,
    bbox_format,
    group_size,
    **kw,
) -> None:
    """Convert web vision-language data for co-training: LLaVA/ShareGPT conversations, Hugging Face
    parquet or save_to_disk datasets (LLaVA-OneVision, the_cauldron, plain rows), WebDataset tars,
    COCO instances and RefCOCO-style boxes, JSON Lines rows.

    Turns, images (JPEG/PNG bytes copied unchanged) and boxes (pixels) are stored as they are;
    prompt templates and <loc> tokens are applied by the loader. With --on-error skip a bad sample
    is left out and listed by id in manifest.json 'skipped'.

    \b
    Examples:
      vla-data convert web llava_instruct_150k.json web/ --image-root coco/train2017
      vla-data convert web the_cauldron/vqav2/ web/
      vla-data convert web annotations/instances_val2017.json web/ --on-error skip
      vla-data convert web captions.jsonl web/ --prompt-field "" --answer-field caption --kind caption
    """
    from vla_data.sources.web import WebSource

    source = WebSource(
        path=src,
        format=web_format,
        fields=parse_mapping(field_names, None),
        kind=kind,
        image_root=image_root,
        split=split,
        bbox_format=bbox_format,
        group_size=group_size,
        image_field=image_field,
        prompt_field="question" if prompt_field is None else prompt_field,
        answer_field=answer_field,
        kind_field=kind_field,
    )
    if source.format == "jsonl" and kind is None and "kind" not in source.fields:
        click.echo(
            "warning: assuming --kind vqa for every sample; give --kind-field (e.g. --kind-field kind) "
            "or --kind caption|vqa|detection",
            err=True,
        )
    manifest = run_convert(source, out, build_options(kw))
    click.echo(describe_dataset(out))
    if manifest.skipped:
        click.echo(f"{len(manifest.skipped)} samples skipped (see manifest.json 'skipped')", err=True)
