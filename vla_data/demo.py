"""Built-in sample data and the end-to-end demo behind `vla-data demo`."""

from __future__ import annotations

import shutil
from pathlib import Path

from vla_data.errors import VlaDataError

MARKER = ".vla-data-demo"  # written into --out: only a folder holding it is cleared on the next run
MADE = ("raw_aloha", "dataset", "fast_tokenizer", "raw_web", "web", "loader.json")


def clear_demo_folder(out: Path) -> None:
    """Empty what an earlier demo run wrote in `out`; refuse a non-empty folder the demo did not make."""
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise VlaDataError(
            f"{out}: the folder is not empty and was not written by `vla-data demo` "
            f"(no {MARKER} file); nothing was deleted. Choose an empty or new folder with --out"
        )
    for name in MADE:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(
        "written by `vla-data demo`; the next run may replace: " + ", ".join(MADE) + "\n"
    )


def run_demo(out: str | Path, *, echo=print) -> dict:
    """Write the sample, convert it, and report what was made. Returns the paths it created."""
    from vla_data.convert import ConvertOptions, convert
    from vla_data.info import describe_dataset
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.samples import TASKS, write_aloha_sample, write_web_sample
    from vla_data.shards import ShardDataset, verify_dataset
    from vla_data.sources.hdf5 import HDF5Source
    from vla_data.sources.web import WebSource
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks
    from vla_data.tokenizers.evaluate import evaluate_tokenizer, format_eval_table

    out = Path(out)
    raw = out / "raw_aloha"
    dataset = out / "dataset"
    clear_demo_folder(out)
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

    web_raw = write_web_sample(out / "raw_web")
    web = out / "web"
    convert(WebSource(str(web_raw), kind_field="kind", prompt_field="question"), web, ConvertOptions())
    echo(f"\nconverted {ShardDataset(web).manifest.num_frames} web VLM samples (captions + VQA) -> {web}")

    config = LoaderConfig(  # paths relative to loader.json: the folder works wherever it is moved
        sources=(
            SourceConfig(
                "robot",
                ("dataset",),
                weight=0.7,
                cameras={
                    "base_0_rgb": "cam_high",
                    "left_wrist_0_rgb": "cam_left_wrist",
                    "right_wrist_0_rgb": None,
                },
            ),
            SourceConfig("web", ("web",), weight=0.3),
        ),
        fast_tokenizer="fast_tokenizer",
        batch_size=16,
        horizon=50,
        max_tokens=256,
        mode="stratified",
        image_size=(224, 224),
    )
    config.save(out / "loader.json")
    loader = make_loader(out / "loader.json")
    echo(f"\nloader config -> {out / 'loader.json'}; {len(loader)} batches per epoch")
    for index, batch in zip(range(3), loader, strict=False):
        robot = int(batch["has_actions"].sum())
        tokens = batch["token_mask"].sum(dim=1)
        fast = batch["fast_token_mask"].sum(dim=1)[batch["has_actions"]]
        echo(
            f"batch {index}: {robot} robot + {len(tokens) - robot} web samples; tokens/sample "
            f"min {int(tokens.min())} max {int(tokens.max())}; FAST tokens/robot sample mean {fast.float().mean():.1f}; "
            f"padded action steps {int(batch['action_is_pad'][batch['has_actions']].sum())}"
        )
    return {
        "raw": raw,
        "dataset": dataset,
        "tokenizer": tokenizer_dir,
        "web": web,
        "loader": out / "loader.json",
    }
