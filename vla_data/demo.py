"""Built-in sample data and the end-to-end demo behind `vla-data demo`."""

from __future__ import annotations

from pathlib import Path


def run_demo(out: str | Path, *, echo=print) -> dict:
    """Write the sample, convert it, and report what was made. Returns the paths it created."""
    from vla_data.convert import ConvertOptions, convert
    from vla_data.info import describe_dataset
    from vla_data.samples import TASKS, write_aloha_sample
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
