"""Loader benchmark: samples/s per worker count against decode+resize, worker RSS over time."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vla_data.bench.timing import median_seconds

if TYPE_CHECKING:
    import numpy as np

ROUNDS = 5  # each: the bound, then the loader; ratios are per round (the machine's load moves)


def _worker_pids() -> list[str]:
    """This process's DataLoader workers: Python children other than multiprocessing's resource
    tracker (a server a test started is not Python, or not this one)."""
    import os

    pids = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
                pids += f.read().split()
        except OSError:
            continue
    workers = []
    for pid in pids:
        try:
            if os.readlink(f"/proc/{pid}/exe") != os.readlink("/proc/self/exe"):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"resource_tracker" not in f.read():
                    workers.append(pid)
        except OSError:
            continue
    return workers


def _children_rss_mb() -> list[dict[str, float]]:
    """Resident memory of this process's DataLoader workers, from /proc: total (`rss`) and
    anonymous (`anon`, the heap: what a leak grows; the rest is memory-mapped shard pages, shared
    with the page cache and reclaimable)."""
    sizes = []
    for pid in _worker_pids():
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            sizes.append(
                {
                    "rss": int(fields["VmRSS"].split()[0]) / 1024,
                    "anon": int(fields["RssAnon"].split()[0]) / 1024,
                }
            )
        except (OSError, KeyError):
            continue
    return sizes


def _cpu_seconds(workers: list[str]) -> float:
    """CPU time used so far by this process (all threads) and the given workers: what a sample
    costs however busy the machine is (wall time also counts waiting for a core)."""
    import os

    ticks = 0
    for pid in workers:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError):
            continue
    return time.process_time() + ticks / os.sysconf("SC_CLK_TCK")


def worker_rss_over_data(
    root: Path, *, batch_size: int, horizon: int, rss_batches: int, workers: int = 2
) -> dict[str, Any]:
    """Worker RSS while a loader walks one pass over a generated dataset of exactly
    `rss_batches x batch_size` steps: measured after 1%, 10%, 50% and 100% of its steps were drawn
    (a pass never repeats a step), so memory that grows with the data touched shows."""
    from vla_data.bench.synthetic import SyntheticRobotSource
    from vla_data.convert import ConvertOptions, convert
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.loader.fast_cache import build_fast_cache
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    steps = rss_batches * batch_size
    episode_steps = 400
    convert(
        SyntheticRobotSource(-(-steps // episode_steps), episode_steps),
        root / "rss",
        ConvertOptions(progress=False),
    )
    chunks = sample_chunks([root / "rss"], ChunkSpec(horizon=horizon, max_chunks=2000))
    FastTokenizer.fit(chunks.values, vocab_size=512).save_pretrained(root / "rss_fast")
    config = LoaderConfig(
        sources=(SourceConfig("robot", (str(root / "rss"),)),),
        fast_tokenizer=str(root / "rss_fast"),
        fast_mapping="append",
        batch_size=batch_size,
        horizon=horizon,
        max_tokens=512,
        samples_per_epoch=steps,
        num_workers=workers,
    )
    build_fast_cache(make_loader(config).sources[0], 0)
    loader = make_loader(config)
    dataset_steps = len(loader.sources[0])
    marks = sorted(
        {max(1, rss_batches // 100), max(1, rss_batches // 10), max(1, rss_batches // 2), rss_batches}
    )
    points = []
    for index, _ in enumerate(loader, 1):
        if index in marks:
            points.append(
                {
                    "batches": index,
                    "steps_touched": index * batch_size / dataset_steps,
                    "workers": _children_rss_mb(),
                }
            )
        if index == marks[-1]:
            break
    return {"dataset_steps": dataset_steps, "points": points}


def stored_frames(robot, steps: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Image slot -> the encoded frame of each step of `robot`'s first dataset, for the slots with a
    camera: what the loader decodes for those steps, as the same views of the mapped shard."""
    ds = robot.datasets[0]
    located = [ds.locate(step) for step in steps.tolist()]
    return {
        slot: [robot.frame_view(0, episode, feature, t) for episode, t in located]
        for slot, feature in robot.slots[0].items()
        if feature is not None
    }


def decode_into_batches(
    collate, frames: dict[str, list[np.ndarray]], batch_size: int, draft: bool
) -> Callable[[], list[dict[str, np.ndarray]]]:
    """The bound's work: `frames` (`stored_frames`) decoded with the loader's own `decode_into` into
    the rows of batch image arrays, batch by batch and slot by slot as the loader goes, and nothing
    else (no blank slot zeroed, no other field). The arrays are two batches of the loader's
    `collate`, taken once per pass (~0.3% of it): in one process these are the buffers the loader's
    own batches alternate between (a batch is held while the next is built), so bound and loader
    decode into the same memory, whose placement moves decode time by +-15% between processes."""
    from vla_data.images import decode_into
    from vla_data.loader.collate import BatchArrays

    steps = len(next(iter(frames.values())))

    def work() -> list[dict[str, np.ndarray]]:
        batches = [BatchArrays(collate, collate.shape, batch_size).images for _ in range(2)]
        for n, first in enumerate(range(0, steps, batch_size)):
            for slot, views in frames.items():
                rows = batches[n % 2][slot]
                for b, data in enumerate(views[first : first + batch_size]):
                    decode_into(data, rows[b], draft=draft)
        return batches  # the images of the last two batches (tests)

    return work


def bench_loader(
    *,
    batch_size: int = 32,
    horizon: int = 50,
    batches: int = 150,
    rss_batches: int = 1000,
    workers: list[int] = (0, 1, 2),
    image_size: tuple[int, int] = (240, 320),
    work_dir: str | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """Loader samples/s for batch 32, 2 cameras, H=50 per worker count, the decode+resize bound of
    the same images, and worker RSS across `rss_batches` batches of a dataset they traverse once;
    with `profile`, also the time per sample of each loader stage (`loader_profile.profile_loader`).

    The `batches` are timed in `ROUNDS` rounds, each right after a pass of the bound in the same
    process: samples/s is the median over rounds, the ratio the median of the per-round ratios
    (after the batches workers prefetched while the bound ran)."""
    import gc

    import numpy as np

    from vla_data.convert import ConvertOptions, convert
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.loader.fast_cache import build_fast_cache
    from vla_data.loader.robot import load_image
    from vla_data.samples import write_aloha_sample
    from vla_data.sources.hdf5 import HDF5Source
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        root = Path(tmp)
        write_aloha_sample(root / "raw", episodes=10, steps=300, height=image_size[0], width=image_size[1])
        convert(
            HDF5Source.from_paths(root / "raw", layout="aloha", task="pick up the cube"),
            root / "robot",
            ConvertOptions(workers=2),
        )
        chunks = sample_chunks([root / "robot"], ChunkSpec(horizon=horizon))
        FastTokenizer.fit(chunks.values).save_pretrained(root / "fast")
        config = LoaderConfig(
            sources=(SourceConfig("robot", (str(root / "robot"),)),),
            fast_tokenizer=str(root / "fast"),
            fast_mapping="append",
            batch_size=batch_size,
            horizon=horizon,
            max_tokens=512,
            samples_per_epoch=batch_size * (batches + 1),  # + the warm-up batch
        )
        loader = make_loader(config)
        build_fast_cache(loader.sources[0], 0)

        robot = loader.sources[0]
        steps = np.random.default_rng(0).integers(0, len(robot), batch_size * 20)
        frames = stored_frames(robot, steps)
        draft = config.image_decode == "draft"
        bound_pass = decode_into_batches(loader.dataloader.collate_fn, frames, batch_size, draft)

        encoded = [bytes(data) for views in frames.values() for data in views]

        def fresh_arrays():
            for data in encoded:
                load_image(data, config.image_size, draft=draft)

        def bound_seconds(work=bound_pass) -> tuple[float, float]:
            """Wall and CPU seconds per sample of `work` over the frames."""
            cpu = time.process_time()
            wall = median_seconds(work, 1)
            return wall / len(steps), (time.process_time() - cpu) / len(steps)

        fresh = [bound_seconds(fresh_arrays)[1] for _ in range(ROUNDS)]

        stages = None
        if profile:
            from vla_data.bench.loader_profile import profile_loader

            # one decode thread, as the bound decodes (the stage times are CPU time of all threads)
            stages = profile_loader(
                make_loader(LoaderConfig(**{**vars(config), "decode_threads": 1})), batches
            )
        runs, bounds, cpu_bounds = {}, [], []
        per_round = max(1, batches // ROUNDS)
        for n in workers:
            drain = n * 2  # batches the workers prefetch (prefetch_factor 2) while the bound runs
            loader = make_loader(
                LoaderConfig(
                    **{
                        **vars(config),
                        "num_workers": n,
                        "samples_per_epoch": batch_size * (ROUNDS * (per_round + drain) + 1),
                    }
                )
            )
            iterator = iter(loader)
            next(iterator)  # start workers and warm caches
            workers_now = _worker_pids() if n else []
            rates, ratios, cpu_ratios = [], [], []
            for _ in range(ROUNDS):
                bound, cpu_bound = bound_seconds()
                for _ in range(drain):
                    next(iterator)
                start, cpu = time.perf_counter(), _cpu_seconds(workers_now)
                for _ in range(per_round):
                    next(iterator)
                rates.append(per_round * batch_size / (time.perf_counter() - start))
                ratios.append(rates[-1] * bound)
                cpu_ratios.append(cpu_bound * per_round * batch_size / (_cpu_seconds(workers_now) - cpu))
                bounds.append(bound)
                cpu_bounds.append(cpu_bound)
            del iterator, loader  # shuts its workers down before the next measurement
            gc.collect()
            rate = statistics.median(rates)
            runs[str(n)] = {
                "samples_per_s": rate,
                "batches_per_s": rate / batch_size,
                "ratio_to_bound": statistics.median(ratios),
                "ratios": ratios,
                "cpu_ratio_to_bound": statistics.median(cpu_ratios),
                "cpu_ratios": cpu_ratios,
            }
        bound = statistics.median(bounds)
        rss = worker_rss_over_data(root, batch_size=batch_size, horizon=horizon, rss_batches=rss_batches)
        return {
            "batch_size": batch_size,
            "horizon": horizon,
            "cameras": 2,
            "stored_image_size": list(image_size),
            "model_image_size": [224, 224],
            "batches": per_round * ROUNDS,
            "rounds": ROUNDS,
            "bound_decode_resize": {
                "samples_per_s": 1 / bound,
                "samples_per_cpu_s": 1 / statistics.median(cpu_bounds),
            },
            # the same frames decoded + resized into a fresh array each (`load_image`, CPU time): what
            # the bound was before it wrote into batch rows; fresh memory and its placement move it
            "fresh_arrays": {"samples_per_cpu_s": 1 / statistics.median(fresh)},
            "loader": runs,
            "worker_rss_mb": rss,
            **({"profile": stages} if stages else {}),
        }


def format_loader_table(result: dict[str, Any]) -> str:
    h, w = result["stored_image_size"]
    lines = [
        f"loader: batch {result['batch_size']}, 2 cameras {h}x{w} JPEG -> 224x224, H={result['horizon']}, FAST cached, {result['batches']} batches per worker count",
        f"{'run':<32}{'samples/s':>10}{'batches/s':>11}{'x bound':>9}{'range':>11}"
        f"{'x bound (CPU)':>15}{'range':>11}",
        f"{'decode + resize only (bound)':<32}{result['bound_decode_resize']['samples_per_s']:>10.0f}{'':>11}{1.0:>9.2f}"
        f"{'':>11}{1.0:>15.2f}",
    ]
    for n, run in result["loader"].items():
        lines.append(
            f"{'loader num_workers=' + n:<32}{run['samples_per_s']:>10.0f}{run['batches_per_s']:>11.1f}{run['ratio_to_bound']:>9.2f}"
            f"{min(run['ratios']):>6.2f}-{max(run['ratios']):.2f}{run['cpu_ratio_to_bound']:>15.2f}"
            f"{min(run['cpu_ratios']):>6.2f}-{max(run['cpu_ratios']):.2f}"
        )
    fresh = result["fresh_arrays"]["samples_per_cpu_s"] / result["bound_decode_resize"]["samples_per_cpu_s"]
    lines.append(
        f"{'(info) decode into fresh arrays':<32}{'':>10}{'':>11}{'':>9}{'':>11}{fresh:>15.2f}"
        "   (load_image per frame: new memory each time)"
    )
    lines.append(
        f"(medians of {result['rounds']} rounds, each the bound then the loader; CPU: samples per CPU-second "
        "of this process and its workers, against the bound's)"
    )
    rss = result["worker_rss_mb"]
    lines.append(
        f"worker RSS over one pass of a generated {rss['dataset_steps']}-step dataset (total / anonymous):"
    )
    for point in rss["points"]:
        sizes = ", ".join(f"{w['rss']:.0f} / {w['anon']:.0f} MB" for w in point["workers"])
        lines.append(
            f"  after {point['batches']:>5} batches ({point['steps_touched']:>4.0%} of steps): {sizes}"
        )
    if "profile" in result:
        from vla_data.bench.loader_profile import format_profile

        lines += ["", format_profile(result["profile"])]
    return "\n".join(lines)
