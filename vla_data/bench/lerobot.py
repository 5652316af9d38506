"""`vla-data bench lerobot`: LeRobot's `LeRobotDataset` against our loader on the same episodes.

Needs the `lerobot` package, which cannot be installed beside this project's pinned torch on
Python 3.11 (see `LEROBOT_MISSING`); the command then reports that it skipped, and why.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any

LEROBOT_MISSING = (
    "skipped: the `lerobot` package is not importable here. It cannot be installed beside the pinned "
    "torch 2.13.0: lerobot 0.4.4, the newest release for Python 3.11, requires torch<2.11, "
    "torchvision<0.26 and torchcodec<0.11, and lerobot >= 0.5 requires Python >= 3.12. Run "
    "`vla-data bench lerobot --dataset ROOT` in an environment where lerobot is installed."
)


def lerobot_available() -> bool:
    return importlib.util.find_spec("lerobot") is not None


def _samples_per_s(loader, batches: int, batch_size: int) -> float:
    iterator = iter(loader)
    next(iterator)  # start workers, open files
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def bench_lerobot(
    dataset: str | Path,
    *,
    batch_size: int = 32,
    horizon: int = 50,
    batches: int = 20,
    workers: tuple[int, ...] = (0, 2),
    work_dir: str | None = None,
) -> dict[str, Any]:
    """Samples/s of `LeRobotDataset` (action chunk of `horizon` by `delta_timestamps`, frames resized
    to 224x224 in the pipeline) and of our loader on the same LeRobot v3.0 dataset converted with
    `--image-size 224`, for each worker count, and their ratio."""
    if not lerobot_available():
        return {"skipped": LEROBOT_MISSING}
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from vla_data.convert import ConvertOptions, convert
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.loader.fast_cache import build_fast_cache
    from vla_data.sources.lerobot import LeRobotSource
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    root = Path(dataset)
    fps = json.loads((root / "meta" / "info.json").read_text())["fps"]
    theirs = LeRobotDataset(
        root.name, root=root, delta_timestamps={"action": [t / fps for t in range(horizon)]}
    )
    cameras = list(theirs.meta.camera_keys)

    def resize_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        for item in items:
            for key in cameras:
                item[key] = torch.nn.functional.interpolate(item[key][None], (224, 224), mode="bilinear")[0]
        return torch.utils.data.default_collate(items)

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        out = Path(tmp) / "converted"
        convert(LeRobotSource.from_path(root), out, ConvertOptions(image_size=(224, 224), workers=2))
        FastTokenizer.fit(sample_chunks([out], ChunkSpec(horizon=horizon)).values).save_pretrained(
            Path(tmp) / "fast"
        )
        config = LoaderConfig(
            sources=(SourceConfig("robot", (str(out),)),),
            fast_tokenizer=str(Path(tmp) / "fast"),
            batch_size=batch_size,
            horizon=horizon,
            max_tokens=1024,
            samples_per_epoch=batch_size * (batches + 1),
        )
        build_fast_cache(make_loader(config).sources[0], 0)
        runs = {}
        for n in workers:
            lerobot_loader = torch.utils.data.DataLoader(
                theirs, batch_size=batch_size, shuffle=True, num_workers=n, collate_fn=resize_collate
            )
            runs[str(n)] = {
                "lerobot_samples_per_s": _samples_per_s(lerobot_loader, batches, batch_size),
                "vla_data_samples_per_s": _samples_per_s(
                    make_loader(LoaderConfig(**{**vars(config), "num_workers": n})), batches, batch_size
                ),
            }
            runs[str(n)]["ratio"] = (
                runs[str(n)]["vla_data_samples_per_s"] / runs[str(n)]["lerobot_samples_per_s"]
            )
    return {
        "dataset": str(root),
        "batch_size": batch_size,
        "horizon": horizon,
        "batches": batches,
        "runs": runs,
    }


def format_lerobot_table(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return result["skipped"]
    lines = [
        f"LeRobotDataset vs vla-data loader on {result['dataset']}, batch {result['batch_size']}, "
        f"H={result['horizon']}, {result['batches']} batches",
        f"{'num_workers':<13}{'LeRobot samples/s':>19}{'ours samples/s':>16}{'x':>7}",
    ]
    for n, run in result["runs"].items():
        lines.append(
            f"{n:<13}{run['lerobot_samples_per_s']:>19.0f}{run['vla_data_samples_per_s']:>16.0f}{run['ratio']:>7.1f}"
        )
    return "\n".join(lines)
