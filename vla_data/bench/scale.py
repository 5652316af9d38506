"""`vla-data bench scale`: does every stage stay linear in time and flat in memory as data grows?

Each stage runs on generated data at several multiples of a base size (1x, 4x, 16x by default),
each run in a fresh process, so its peak RSS is its own. Reported per run: time per item (the
stage's own unit: frame, episode, sample or step; for the loader the median batch of a fixed
number drawn at every size) and peak RSS, plus the RSS above the process's baseline after its
imports (the part the data can make grow); then the largest/smallest ratios, and the marginal
ratio (cost per extra item between the two largest sizes over that between the two smallest),
in which fixed start-up costs cancel. A final check builds a loader over a generated 2M-step
robot dataset and times its first batch, with the main process's peak RSS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CHILD = "import json, sys; from vla_data.bench.scale import child_run; print(json.dumps(child_run(json.loads(sys.argv[1]))))"

# stage -> (item name, base size in items at 1x, items per unit of generated data)
STAGES: dict[str, tuple[str, int, int]] = {
    "convert hdf5": ("frame", 1600, 50),  # ALOHA files of 50 steps, 2 cameras 48x64
    "convert lerobot v3.0": ("episode", 400, 1),  # every episode in one data file, 20 rows each
    "convert rlds gzip": ("episode", 100, 1),  # one GZIP TFRecord file, 20 steps, 2 cameras 32x32
    "convert web": ("sample", 800, 1),  # jsonl + 32x32 PNG files
    "tokenizer fit": ("step", 32000, 200),  # episodes of 200 steps, H=10, --max-chunks 4000
    "tokenizer cache": ("step", 32000, 200),
    "loader": ("batch", 32000, 200),  # dataset steps; the same number of batches of 8 at every size
}
# imported before the baseline RSS and the clock, so start-up imports are not counted per item
PRELOAD = {
    "convert hdf5": ["vla_data.cli.convert", "vla_data.convert", "vla_data.sources.hdf5", "h5py"],
    "convert lerobot v3.0": ["vla_data.cli.convert", "vla_data.convert", "vla_data.sources.lerobot"],
    "convert rlds gzip": ["vla_data.cli.convert", "vla_data.convert", "vla_data.sources.rlds"],
    "convert web": ["vla_data.cli.convert", "vla_data.convert", "vla_data.sources.web"],
    "tokenizer fit": ["vla_data.cli.tokenizer", "vla_data.tokenizers", "vla_data.tokenizers.chunks"],
    "tokenizer cache": ["vla_data.cli.tokenizer", "vla_data.loader", "vla_data.loader.fast_cache"],
    "loader": ["torch", "vla_data.loader"],
}
FIT_CHUNKS = 4000


def _status_mb(*keys: str) -> dict[str, float]:
    """Fields of /proc/self/status in MB. VmHWM is this process image's peak RSS (getrusage's
    ru_maxrss would also count the parent's memory, inherited through fork before exec)."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in keys}


class _AnonPeak:
    """Samples RssAnon (heap, not memory-mapped file pages) every 10 ms in a thread: its peak
    tells memory the process holds apart from shard pages it maps, which the page cache shares."""

    def __init__(self) -> None:
        import threading

        self.peak = _status_mb("RssAnon")["RssAnon"]
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, _status_mb("RssAnon")["RssAnon"])

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return max(self.peak, _status_mb("RssAnon")["RssAnon"])


def child_run(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: import what the stage needs, note the RSS, run it, time it."""
    import importlib
    import statistics
    import time

    from vla_data.cli import main

    for module in spec.get("preload", []):
        try:
            importlib.import_module(module)
        except ImportError:  # a module renamed since: its import is then timed with the stage
            pass
    baseline = _status_mb("VmRSS")["VmRSS"]
    anon = _AnonPeak()
    start, cpu_start = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {}
    if spec.get("loader"):
        from vla_data.loader import LoaderConfig, make_loader

        loader = make_loader(LoaderConfig.load(spec["loader"]))
        iterator = iter(loader)
        next(iterator)
        out["first_batch_s"] = time.perf_counter() - start
        out["first_batch_rss_mb"] = _status_mb("VmHWM")["VmHWM"]
        times = []
        for _ in range(spec.get("batches", 0)):
            t = time.perf_counter()
            next(iterator)
            times.append(time.perf_counter() - t)
        out["batches_s"] = sum(times)
        # the median batch: robust to other processes stealing the CPU for a while
        out["median_batch_s"] = statistics.median(times) if times else 0.0
    else:
        main(spec["cli"], standalone_mode=False)
    out["seconds"] = time.perf_counter() - start
    out["cpu_seconds"] = time.process_time() - cpu_start  # this process only: robust to a loaded machine
    out["baseline_rss_mb"] = baseline
    out["peak_anon_mb"] = anon.stop()
    status = _status_mb("VmHWM", "RssAnon", "RssFile")
    out["peak_rss_mb"] = status["VmHWM"]
    out["end_rss_file_mb"] = status["RssFile"]  # memory-mapped shard pages, shared with the page cache
    out["end_rss_anon_mb"] = status["RssAnon"]
    return out


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench scale stage failed ({spec}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _robot_dataset(path: Path, steps: int, *, camera: bool, episode_steps: int = 200) -> Path:
    from vla_data.bench.synthetic import SyntheticRobotSource
    from vla_data.convert import ConvertOptions, convert

    if not (path / "manifest.json").exists():
        source = SyntheticRobotSource(max(1, steps // episode_steps), episode_steps, camera=camera)
        convert(source, path, ConvertOptions(progress=False))
    return path


def _prepare(
    stage: str, items: int, work: Path, shared: dict[str, Path], loader_batches: int
) -> dict[str, Any]:
    """Write the stage's input of `items` items under `work`; the child's spec."""
    from vla_data import samples

    out = str(work / "out")
    if stage == "convert hdf5":
        samples.write_aloha_sample(work / "raw", episodes=items // 50, steps=50, height=48, width=64)
        return {
            "cli": ["convert", "hdf5", str(work / "raw"), out, "--layout", "aloha", "--fps", "50", "--quiet"]
        }
    if stage == "convert lerobot v3.0":
        samples.write_lerobot_v30_sample(work / "raw", episodes=items, steps=20, episodes_per_file=items)
        return {"cli": ["convert", "lerobot", str(work / "raw"), out, "--quiet"]}
    if stage == "convert rlds gzip":
        samples.write_rlds_sample(
            work / "raw", episodes=items, steps=20, image_size=(32, 32), shards=1, compress=True
        )
        return {"cli": ["convert", "rlds", str(work / "raw"), out, "--fps", "10", "--quiet"]}
    if stage == "convert web":
        raw = samples.write_web_sample(work / "raw", samples=items, size=32)
        return {"cli": ["convert", "web", str(raw), out, "--kind-field", "kind", "--quiet"]}
    if stage == "tokenizer fit":
        data = _robot_dataset(shared["root"] / f"robot_{items}", items, camera=False)
        return {
            "cli": ["tokenizer", "fit", str(data), "-o", str(work / "tok"), "--horizon", "10"]
            + ["--vocab-size", "256", "--max-chunks", str(FIT_CHUNKS)]
        }
    if stage == "tokenizer cache":
        data = _robot_dataset(shared["root"] / f"robot_{items}", items, camera=False)
        return {"cli": ["tokenizer", "cache", str(shared["tok"]), str(data), "--horizon", "10", "--quiet"]}
    if stage == "loader":
        config = _loader_config(work, items, shared, batches=loader_batches)
        return {"loader": str(config), "batches": loader_batches}
    raise ValueError(f"unknown stage {stage!r}; stages: {list(STAGES)}")


def _loader_config(
    work: Path, steps: int, shared: dict[str, Path], *, batches: int = 1, cache: bool = True
) -> Path:
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.loader.fast_cache import build_fast_cache

    data = _robot_dataset(work / "robot", steps, camera=True, episode_steps=max(200, steps // 1000))
    config = LoaderConfig(
        sources=(SourceConfig("robot", (str(data),)),),
        fast_tokenizer=str(shared["tok"]),
        fast_mapping="append",
        batch_size=8,
        horizon=10,
        action_dim=8,
        image_size=(32, 32),
        max_tokens=256,
        samples_per_epoch=8 * (batches + 1),
        use_fast_cache=cache,
    )
    if cache:
        build_fast_cache(make_loader(config).sources[0], 0)
    config.save(work / "loader.json")
    return work / "loader.json"


def _shared_tokenizer(root: Path) -> Path:
    """A FAST tokenizer for 7-dim, 10-step chunks, fitted once on a small generated dataset."""
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    data = _robot_dataset(root / "tok_data", 2000, camera=False)
    chunks = sample_chunks([data], ChunkSpec(horizon=10))
    FastTokenizer.fit(chunks.values, vocab_size=256).save_pretrained(root / "tok")
    return root / "tok"


def bench_scale(
    *,
    sizes: list[int] = (1, 4, 16),
    stages: list[str] | None = None,
    base: float = 1.0,
    loader_batches: int = 1000,
    loader_steps: int = 2_000_000,
    work_dir: str | None = None,
) -> dict[str, Any]:
    """Per-item time and peak RSS of every stage at each size multiple (of `base` x its base
    size), and the ratios of the largest to the smallest; then the `loader_steps` loader check
    (0 skips it)."""
    stages = list(STAGES) if stages is None else stages
    if unknown := [s for s in stages if s not in STAGES]:
        raise ValueError(f"unknown stages {unknown}; stages: {list(STAGES)}")
    sizes = sorted(sizes)
    result: dict[str, Any] = {"sizes": sizes, "base": base, "loader_batches": loader_batches, "stages": {}}
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        root = Path(tmp)
        shared = {"tok": _shared_tokenizer(root), "root": root}
        for stage in stages:
            item, base_items, unit = STAGES[stage]
            runs = {}
            for size in sizes:
                work = root / f"{stage.replace(' ', '_')}_{size}"
                work.mkdir()
                data_items = max(1, round(base * base_items / unit)) * size * unit
                spec = _prepare(stage, data_items, work, shared, loader_batches)
                measured = _run_child({**spec, "preload": PRELOAD[stage]})
                loader = stage == "loader"
                items = loader_batches if loader else data_items
                seconds = measured["batches_s"] if loader else measured["seconds"]
                runs[str(size)] = {
                    "items": items,
                    "data_items": data_items,
                    "seconds": seconds,
                    "ms_per_item": 1000 * (measured["median_batch_s"] if loader else seconds / items),
                    # conversion and tokenizer stages: the stage's own CPU time per item (the wall
                    # clock above also counts time other processes took the CPU)
                    **({} if loader else {"cpu_ms_per_item": 1000 * measured["cpu_seconds"] / items}),
                    "peak_rss_mb": measured["peak_rss_mb"],
                    "stage_rss_mb": measured["peak_rss_mb"] - measured["baseline_rss_mb"],
                    "peak_anon_mb": measured["peak_anon_mb"],
                    "end_rss_file_mb": measured["end_rss_file_mb"],
                    **({"first_batch_s": measured["first_batch_s"]} if loader else {}),
                }
                shutil.rmtree(work)
            lo, hi = runs[str(sizes[0])], runs[str(sizes[-1])]
            result["stages"][stage] = {
                "item": item,
                "runs": runs,
                "time_ratio": hi["ms_per_item"] / lo["ms_per_item"],
                **(
                    {"cpu_time_ratio": hi["cpu_ms_per_item"] / lo["cpu_ms_per_item"]}
                    if "cpu_ms_per_item" in hi
                    else {}
                ),
                "marginal_time_ratio": _marginal_ratio([runs[str(s)] for s in sizes]),
                "rss_ratio": hi["peak_rss_mb"] / lo["peak_rss_mb"],
                "stage_rss_ratio": hi["stage_rss_mb"] / max(lo["stage_rss_mb"], 1.0),
                "anon_ratio": hi["peak_anon_mb"] / lo["peak_anon_mb"],
            }
        if loader_steps:
            work = root / "loader_big"
            work.mkdir()
            config = _loader_config(work, loader_steps, shared, cache=False)
            measured = _run_child({"loader": str(config), "batches": 0, "preload": PRELOAD["loader"]})
            result["loader_check"] = {
                "steps": loader_steps,
                "build_and_first_batch_s": measured["first_batch_s"],
                "main_rss_mb": measured["first_batch_rss_mb"],
                "holds": measured["first_batch_s"] < 10 and measured["first_batch_rss_mb"] < 1024,
            }
    return result


def _marginal_ratio(runs: list[dict[str, Any]]) -> float | None:
    """Cost of each extra item between the two largest sizes over that between the two smallest:
    fixed start-up costs cancel, so a stage that slows down per item as data grows shows > 1."""
    if len(runs) < 3 or runs[0]["items"] == runs[1]["items"] or runs[-2]["items"] == runs[-1]["items"]:
        return None

    def marginal(a, b):
        return (b["seconds"] - a["seconds"]) / (b["items"] - a["items"])

    low = marginal(runs[0], runs[1])
    return marginal(runs[-2], runs[-1]) / low if low > 0 else None


def format_scale_table(result: dict[str, Any]) -> str:
    sizes = result["sizes"]
    top = f"{sizes[-1]}x/{sizes[0]}x"
    head = "".join(f"{str(s) + 'x':>8}" for s in sizes) + f"{top:>8}"
    width = 8 * (len(sizes) + 1)
    lines = [
        f"{'':<29}{'ms per item':^{width + 9}} | {'peak RSS MB':^{width}} | {'peak anon MB':^{width}}",
        f"{'stage':<21}{'item':<8}{head}{'marginal':>9} | {head} | {head}",
    ]
    for stage, row in result["stages"].items():
        runs = [row["runs"][str(s)] for s in sizes]
        times = "".join(f"{r['ms_per_item']:>8.3g}" for r in runs) + f"{row['time_ratio']:>8.2f}"
        rss = "".join(f"{r['peak_rss_mb']:>8.0f}" for r in runs) + f"{row['rss_ratio']:>8.2f}"
        anon = "".join(f"{r['peak_anon_mb']:>8.0f}" for r in runs) + f"{row['anon_ratio']:>8.2f}"
        marginal = row["marginal_time_ratio"]
        marginal = "-" if marginal is None else f"{marginal:.2f}"
        lines.append(f"{stage:<21}{row['item']:<8}{times}{marginal:>9} | {rss} | {anon}")
    if check := result.get("loader_check"):
        lines.append(
            f"loader over {check['steps']:,} generated steps: build + first batch "
            f"{check['build_and_first_batch_s']:.1f} s, main-process peak RSS {check['main_rss_mb']:.0f} MB "
            f"({'within' if check['holds'] else 'NOT within'} 10 s and 1 GB)"
        )
    return "\n".join(lines)
