"""Built-in sample data and the end-to-end demo behind `vla-data demo`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CAMERAS = ("cam_high", "cam_left_wrist")
TASKS = ("pick up the cube", "push the cube to the left", "lift the cube and put it down")


def render_frames(positions: np.ndarray, height: int, width: int, color: tuple[int, int, int]) -> np.ndarray:
    """uint8 `[T, H, W, 3]`: a gradient background with a square centred at `positions` [T, 2] in [-1, 1]."""
    ys, xs = np.mgrid[0:height, 0:width]
    background = np.stack(
        [xs * 255 // max(width - 1, 1), ys * 255 // max(height - 1, 1), np.full_like(xs, 64)], -1
    )
    frames = np.broadcast_to(background.astype(np.uint8), (len(positions), height, width, 3)).copy()
    side = max(height, width) // 8
    centres = np.stack([(positions[:, 1] + 1) / 2 * (height - 1), (positions[:, 0] + 1) / 2 * (width - 1)], 1)
    for frame, (cy, cx) in zip(frames, centres.astype(int), strict=True):
        frame[max(cy - side, 0) : cy + side, max(cx - side, 0) : cx + side] = color
    return frames


def write_aloha_episode(
    path: Path, seed: int, steps: int, height: int, width: int, *, compression: str | None = None
) -> None:
    """One ALOHA-layout episode file: 14-dim qpos/qvel/action, two cameras that follow the motion."""
    import h5py

    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, steps)[:, None]
    freq = rng.uniform(0.5, 2.0, 14)
    phase = rng.uniform(0, 2 * np.pi, 14)
    amplitude = rng.uniform(0.2, 0.8, 14)
    qpos = amplitude * np.sin(2 * np.pi * freq * t + phase)  # [T, 14]
    qvel = np.gradient(qpos, axis=0) * steps
    action = np.concatenate([qpos[1:], qpos[-1:]], axis=0)
    with h5py.File(path, "w") as f:
        f.attrs["sim"] = True
        f.create_dataset("action", data=action)
        obs = f.create_group("observations")
        obs.create_dataset("qpos", data=qpos)
        obs.create_dataset("qvel", data=qvel)
        images = obs.create_group("images")
        images.create_dataset(
            CAMERAS[0], data=render_frames(qpos[:, :2], height, width, (220, 40, 40)), compression=compression
        )
        images.create_dataset(
            CAMERAS[1],
            data=render_frames(qpos[:, 7:9], height, width, (40, 200, 60)),
            compression=compression,
        )


def write_aloha_sample(
    folder: str | Path, *, episodes: int = 6, steps: int = 120, height: int = 96, width: int = 128
) -> list[Path]:
    """A deterministic ALOHA-layout sample: `episodes` files `episode_N.hdf5`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(episodes):
        path = folder / f"episode_{i}.hdf5"
        write_aloha_episode(path, seed=i, steps=steps, height=height, width=width)
        paths.append(path)
    return paths


def run_demo(out: str | Path, *, echo=print) -> dict:
    """Write the sample, convert it, and report what was made. Returns the paths it created."""
    from vla_data.convert import ConvertOptions, convert
    from vla_data.info import describe_dataset
    from vla_data.shards import verify_dataset
    from vla_data.sources.hdf5 import HDF5Source
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks
    from vla_data.tokenizers.evaluate import evaluate_tokenizer, format_eval_table

    out = Path(out)
    raw = out / "raw_aloha"
    dataset = out / "dataset"
    if dataset.exists():
        import shutil

        shutil.rmtree(dataset)
    paths = write_aloha_sample(raw)
    echo(f"wrote {len(paths)} ALOHA-layout HDF5 episodes to {raw}")
    source = HDF5Source.from_paths(raw, layout="aloha", task=TASKS[0], fps=50)
    convert(source, dataset, ConvertOptions(workers=1))
    problems = verify_dataset(dataset)
    echo(describe_dataset(dataset))
    echo("verify: " + ("OK" if not problems else "; ".join(problems)))
    if problems:
        raise RuntimeError("demo dataset failed verification")

    tokenizer_dir = out / "fast_tokenizer"
    chunks = sample_chunks([dataset], ChunkSpec(seconds=1.0))
    fast = FastTokenizer.fit(chunks.values, vocab_size=512)
    fast.save_pretrained(tokenizer_dir)
    echo(f"\nfitted FAST ({fast.mode} mode) on {len(chunks.values)} one-second chunks -> {tokenizer_dir}")
    echo(format_eval_table(evaluate_tokenizer(fast, chunks)))
    return {"raw": raw, "dataset": dataset, "tokenizer": tokenizer_dir}
