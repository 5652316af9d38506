"""Built-in sample data and the end-to-end demo behind `vla-data demo`."""

from __future__ import annotations

from pathlib import Path


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
    import shutil

    for folder in (dataset, out / "web"):
        if folder.exists():
            shutil.rmtree(folder)
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

    config = LoaderConfig(
        sources=(
            SourceConfig("robot", (str(dataset),), weight=0.7),
            SourceConfig("web", (str(web),), weight=0.3),
        ),
        fast_tokenizer=str(tokenizer_dir),
        fast_mapping="append",  # the built-in byte tokenizer has no spare ids at the tail
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
