"""`vla-data bench lerobot`: LeRobot's `LeRobotDataset` against our loader on the same episodes.

Needs the optional `lerobot` package. lerobot 0.4.4's declared requirements (torch<2.11, ...)
conflict with this project's torch 2.13.0, so it lives in a separate virtualenv that sees the main
environment (`examples/lerobot_venv.sh`); without it the command says so and exits 0.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEROBOT_MISSING = (
    "skipped: the `lerobot` package is not importable here. lerobot 0.4.4 (the newest release for "
    "Python 3.11) declares torch<2.11 and this project pins torch 2.13.0, so install it without its "
    "declared dependencies into a separate virtualenv that sees this environment: "
    "`sh examples/lerobot_venv.sh /work/venv-lerobot`, then run "
    "`/work/venv-lerobot/bin/python -m vla_data bench lerobot`."
)

_TORCHVISION_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_kept_alive: list[Any] = []  # a torch.library.Library drops its definitions when collected


def lerobot_available() -> bool:
    return importlib.util.find_spec("lerobot") is not None


def import_torchvision() -> str | None:
    """Import torchvision; returns a note when its compiled ops could not load.

    torchvision wheels on PyPI are built for CUDA torch: beside the CPU torch 2.13.0 their `_C`
    library does not load, and `import torchvision` then stops at registering a fake kernel for
    `torchvision::nms`, an operator only `_C` defines. Defining the two schemas it registers lets the
    pure-Python part import (lerobot needs `torchvision.transforms`); any torchvision operator still
    raises if called. The benchmark calls none: it decodes with torchcodec and resizes with
    `transforms.v2.Resize`, which is `torch.nn.functional.interpolate`."""
    import torch

    try:
        import torchvision  # noqa: F401
    except RuntimeError as error:
        if "torchvision::nms" not in str(error):
            raise
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        library = torch.library.Library("torchvision", "DEF")
        for schema in _TORCHVISION_SCHEMAS:
            library.define(schema)
        _kept_alive.append(library)
        import torchvision  # noqa: F401

        return (
            f"torchvision {torchvision.__version__}: compiled ops unavailable (CUDA build beside CPU torch); "
            "op schemas nms/qnms defined so its Python part imports; no torchvision op runs here"
        )
    return None


def _versions() -> dict[str, str]:
    out = {}
    for name in ("lerobot", "torch", "torchcodec", "torchvision", "av"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _forever(loader) -> Iterator[Any]:
    while True:
        yield from loader


def window_rate(loader, *, batches: int, batch_size: int) -> float:
    """Samples/s of `batches` batches from a fresh iterator, after one warm-up batch (workers
    started, files opened); the iterator, and with it its workers, ends before this returns."""
    iterator = _forever(loader)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    rate = batches * batch_size / (time.perf_counter() - start)
    iterator.close()
    return rate


@dataclass(frozen=True)
class LeRobotBenchOptions:
    """What `bench_lerobot` generates and times; the defaults are `vla-data bench lerobot`'s."""

    episodes: int = 20  # of the generated dataset
    steps: int = 300  # frames per generated episode
    source_size: tuple[int, int] = (480, 640)  # (height, width) of the 2 generated cameras
    image_size: int = 224  # square frame size both loaders give the model
    batch_size: int = 32
    horizon: int = 50  # action chunk length
    batches: int = 20  # per timed window
    repeats: int = 5  # timed windows per worker count; their median is reported
    workers: tuple[int, ...] = (0, 2)  # DataLoader num_workers values, each timed
    video_backend: str = "torchcodec"  # LeRobotDataset's
    torch_threads: int = 1  # torch intra-op threads of the main process (workers use 1 each)


def bench_lerobot(
    dataset: str | Path | None = None,
    *,
    work_dir: str | None = None,
    options: LeRobotBenchOptions = LeRobotBenchOptions(),
) -> dict[str, Any]:
    """Samples/s of `LeRobotDataset` (action chunk of `horizon` by `delta_timestamps`, frames resized
    to `image_size` square by `transforms.v2.Resize` in its pipeline) and of our loader on the same
    LeRobot v3.0 dataset converted with `--image-size image_size`, per worker count: medians of
    `repeats` windows of `batches` batches, and their ratio. Without `dataset`, one is generated
    (AV1, 2 cameras, `episodes` x `steps` at `source_size`) under `work_dir` and reused there."""
    if not lerobot_available():
        return {"skipped": LEROBOT_MISSING}
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        if dataset is None:
            from vla_data.bench.lerobot_data import generated_dataset

            height, width = options.source_size
            root = generated_dataset(
                work_dir or tmp, episodes=options.episodes, steps=options.steps, height=height, width=width
            )
        else:
            root = Path(dataset)
        return _compare(root, Path(tmp), options)


def _compare(root: Path, tmp: Path, options: LeRobotBenchOptions) -> dict[str, Any]:
    import torch

    from vla_data.convert import ConvertOptions, convert
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.loader.fast_cache import build_fast_cache
    from vla_data.sources.lerobot import LeRobotSource
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    note = import_torchvision()
    from lerobot.datasets import video_utils
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from torchvision.transforms import v2

    info = json.loads((root / "meta" / "info.json").read_text())
    fps = info["fps"]
    theirs = LeRobotDataset(
        "local/bench",
        root=root,
        delta_timestamps={"action": [t / fps for t in range(options.horizon)]},
        image_transforms=v2.Resize((options.image_size, options.image_size)),
        video_backend=options.video_backend,
    )
    cameras = list(theirs.meta.camera_keys)
    start = time.perf_counter()
    out = tmp / "converted"
    convert(
        LeRobotSource.from_path(root),
        out,
        ConvertOptions(image_size=(options.image_size, options.image_size), workers=2, progress=False),
    )
    convert_s = time.perf_counter() - start
    FastTokenizer.fit(sample_chunks([out], ChunkSpec(horizon=options.horizon)).values).save_pretrained(
        tmp / "fast"
    )
    config = LoaderConfig(
        sources=(SourceConfig("robot", (str(out),)),),
        fast_tokenizer=str(tmp / "fast"),
        fast_mapping="append",
        batch_size=options.batch_size,
        horizon=options.horizon,
        max_tokens=512,
        samples_per_epoch=options.batch_size * (1 + options.batches),  # one window
    )
    build_fast_cache(make_loader(config).sources[0], 0)
    runs = {}
    load = [os.getloadavg()[0]]
    # torch's intra-op threads in this process (DataLoader workers use 1 each): LeRobot's resize
    # runs here at num_workers=0, and with 2 OpenMP threads on 2 cores shared with other processes it
    # falls to a few samples/s (measured: 3-6 against 19-21 with 1 thread at a load average of 9)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(options.torch_threads)
    for n in options.workers:
        lerobot_loader = torch.utils.data.DataLoader(
            theirs,
            batch_size=options.batch_size,
            shuffle=True,
            num_workers=n,
            generator=torch.Generator().manual_seed(0),
        )
        ours = make_loader(LoaderConfig(**{**vars(config), "num_workers": n}))
        theirs_rates, ours_rates = [], []
        for _ in range(options.repeats):  # alternating, so a change in the machine's load hits both alike
            # lerobot keeps torchcodec decoders (with their open files) in a process-wide cache:
            # forked workers would share file offsets with decoders opened here, so start empty
            video_utils._default_decoder_cache.clear()
            theirs_rates.append(
                window_rate(lerobot_loader, batches=options.batches, batch_size=options.batch_size)
            )
            ours_rates.append(window_rate(ours, batches=options.batches, batch_size=options.batch_size))
        video_utils._default_decoder_cache.clear()
        del lerobot_loader, ours
        theirs_median, ours_median = statistics.median(theirs_rates), statistics.median(ours_rates)
        runs[str(n)] = {
            "lerobot_samples_per_s": theirs_median,
            "vla_data_samples_per_s": ours_median,
            "ratio": ours_median / theirs_median,
            "lerobot_windows": theirs_rates,
            "vla_data_windows": ours_rates,
        }
        load.append(os.getloadavg()[0])
    torch.set_num_threads(threads_before)
    first = info["features"][cameras[0]]
    return {
        "dataset": str(root),
        "episodes": info["total_episodes"],
        "frames": info["total_frames"],
        "cameras": {c: info["features"][c]["shape"][:2] for c in cameras},
        "codec": (first.get("info") or {}).get("video.codec", first["dtype"]),
        "image_size": options.image_size,
        "video_backend": options.video_backend,
        "torch_threads": options.torch_threads,
        "versions": _versions(),
        "torchvision_note": note,
        "convert_seconds": convert_s,
        "batch_size": options.batch_size,
        "horizon": options.horizon,
        "batches": options.batches,
        "repeats": options.repeats,
        "runs": runs,
        "load_average_1min": load,
    }


def format_lerobot_table(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return result["skipped"]
    v, size = result["versions"], result["image_size"]
    (h, w), *_ = result["cameras"].values()
    backend = f" (torchcodec {v['torchcodec']})" if result["video_backend"] == "torchcodec" else ""
    lines = [
        f"{result['dataset']}: {result['episodes']} episodes, {result['frames']} frames, "
        f"{len(result['cameras'])} cameras {h}x{w} {result['codec']}",
        f"LeRobotDataset: lerobot {v['lerobot']}, video_backend={result['video_backend']}{backend}, "
        f"delta_timestamps action H={result['horizon']}, "
        f"transforms.v2.Resize {size}x{size}; torch {v['torch']}, {result['torch_threads']} intra-op thread(s)",
        f"ours: converted with --image-size {size} in {result['convert_seconds']:.0f} s, FAST ids cached",
        f"batch {result['batch_size']}, median of {result['repeats']} windows of {result['batches']} batches "
        f"(LeRobot and ours alternating); 1-min load average "
        + " -> ".join(f"{x:.1f}" for x in result["load_average_1min"]),
        f"{'num_workers':<13}{'LeRobot samples/s':>19}{'ours samples/s':>16}{'ours/LeRobot':>14}",
    ]
    for n, run in result["runs"].items():
        lines.append(
            f"{n:<13}{run['lerobot_samples_per_s']:>19.1f}{run['vla_data_samples_per_s']:>16.0f}"
            f"{run['ratio']:>13.1f}x"
        )
    if result["torchvision_note"]:
        lines.append(f"note: {result['torchvision_note']}")
    return "\n".join(lines)
