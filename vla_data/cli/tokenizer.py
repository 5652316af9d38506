"""`vla-data tokenizer fit | eval | encode | decode`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from vla_data.cli.errors import friendly_errors


def _max_chunks(ctx, param, value: str | None) -> int | None:
    if value is None:
        from vla_data.tokenizers.chunks import DEFAULT_MAX_CHUNKS

        return DEFAULT_MAX_CHUNKS
    if value.strip().lower() == "all":
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise click.BadParameter(f"{value!r}: give a positive number of chunks or 'all'")
    return number


def chunk_options(func):
    options = [
        click.option("--horizon", type=int, default=None, help="Chunk length in steps."),
        click.option(
            "--seconds",
            type=float,
            default=None,
            help="Chunk length in seconds (x the dataset fps); default 1 s.",
        ),
        click.option("--key", default="action", show_default=True, help="Feature to tokenize."),
        click.option(
            "--normalization",
            type=click.Choice(["quantile", "zscore", "none"]),
            default="quantile",
            show_default=True,
        ),
        click.option(
            "--max-chunks",
            default=None,
            callback=_max_chunks,
            help="Chunk budget: a deterministic sample (by --seed) of this many start positions "
            "(default 20000, which bounds fit memory); 'all' uses every start position "
            "(memory grows with the dataset).",
        ),
        click.option("--seed", type=int, default=0, show_default=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def chunk_spec(kw: dict):
    from vla_data.tokenizers.chunks import ChunkSpec

    horizon, seconds = kw.pop("horizon"), kw.pop("seconds")
    normalization = kw.pop("normalization")
    return ChunkSpec(
        horizon=horizon,
        seconds=seconds if seconds is not None or horizon is not None else 1.0,
        key=kw.pop("key"),
        normalization=None if normalization == "none" else normalization,
        max_chunks=kw.pop("max_chunks"),
        seed=kw.pop("seed"),
    )


@click.group()
def tokenizer() -> None:
    """Fit, evaluate and use FAST action tokenizers (Hugging Face processor layout)."""


def refuse_foreign_folder(output: str) -> None:
    """`fit -o` may replace a tokenizer, never write into a folder holding anything else."""
    folder = Path(output)
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "processor_config.json").exists():
        found = sorted(p.name for p in folder.iterdir())
        raise click.ClickException(
            f"{output}: not empty and not a FAST tokenizer folder (no processor_config.json; it holds "
            f"{', '.join(found[:5])}{' ...' if len(found) > 5 else ''}); choose an empty or new folder for -o"
        )


@tokenizer.command("fit")
@click.argument("datasets", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(file_okay=False), help="Tokenizer directory to write."
)
@click.option(
    "--mode",
    type=click.Choice(["default", "compat"]),
    default="default",
    show_default=True,
    help="compat: bit-exact with the reference UniversalActionProcessor; default: BPE over coefficient symbols (fewer tokens).",
)
@click.option("--vocab-size", type=int, default=1024, show_default=True)
@click.option(
    "--scale", type=float, default=10, show_default=True, help="DCT coefficient scale before rounding."
)
@chunk_options
@friendly_errors
def fit(datasets, output, mode, vocab_size, scale, **kw) -> None:
    """Fit a FAST tokenizer on the action chunks of converted DATASETS."""
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import sample_chunks

    refuse_foreign_folder(output)
    chunks = sample_chunks(list(datasets), chunk_spec(kw))
    fast = FastTokenizer.fit(chunks.values, scale=scale, vocab_size=vocab_size, mode=mode)
    fast.save_pretrained(output)
    n, h, d = chunks.values.shape
    click.echo(
        f"fitted {mode} FAST on {n} chunks of {h}x{d}: coefficients [{fast.min_token}, {fast.max_token}] -> {output}"
    )


@tokenizer.command("eval")
@click.argument("tokdir", type=click.Path(exists=True, file_okay=False))
@click.argument("datasets", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="PNG of original vs decoded chunks and token lengths (needs the viz extra).",
)
@chunk_options
@friendly_errors
def evaluate(tokdir, datasets, as_json, plot, **kw) -> None:
    """Tokens per chunk, compression vs binning, reconstruction error and decode failures."""
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import sample_chunks
    from vla_data.tokenizers.evaluate import evaluate_tokenizer, format_eval_table, plot_tokenizer

    fast = FastTokenizer.from_pretrained(tokdir)
    spec = chunk_spec(kw)
    if spec.horizon is None and fast.time_horizon:
        from dataclasses import replace

        spec = replace(spec, horizon=fast.time_horizon, seconds=None)
    chunks = sample_chunks(list(datasets), spec)
    result = evaluate_tokenizer(fast, chunks)
    click.echo(json.dumps(result, indent=1) if as_json else format_eval_table(result))
    if plot:
        plot_tokenizer(fast, chunks, plot)
        click.echo(f"plot written to {plot}", err=True)


@tokenizer.command("encode")
@click.argument("tokdir", type=click.Path(exists=True, file_okay=False))
@click.argument("chunks_npy", type=click.Path(exists=True, dir_okay=False))
@click.option("--clip", is_flag=True, help="Clip coefficients outside the fitted range instead of failing.")
@friendly_errors
def encode(tokdir, chunks_npy, clip) -> None:
    """Encode normalized chunks from a .npy file ([B, T, D] or [T, D]); prints one JSON id list per line."""
    from vla_data.tokenizers import FastTokenizer

    fast = FastTokenizer.from_pretrained(tokdir)
    for ids in fast.encode(np.load(chunks_npy), on_error="clip" if clip else "raise"):
        click.echo(json.dumps(ids))


@tokenizer.command("decode")
@click.argument("tokdir", type=click.Path(exists=True, file_okay=False))
@click.argument("ids_file", type=click.File("r"), default="-")
@click.option(
    "--horizon", type=int, default=None, help="Chunk steps T (default: the tokenizer's time_horizon)."
)
@click.option(
    "--action-dim", type=int, default=None, help="Action dims D (default: the tokenizer's action_dim)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write actions [B, T, D] to this .npy file.",
)
@click.option(
    "--on-error", type=click.Choice(["flag", "raise", "relaxed"]), default="flag", show_default=True
)
@friendly_errors
def decode(tokdir, ids_file, horizon, action_dim, output, on_error) -> None:
    """Decode JSON id lists (one per line, from a file or stdin) to actions."""
    from vla_data.tokenizers import FastTokenizer

    fast = FastTokenizer.from_pretrained(tokdir)
    for option, value, stored in (
        ("--horizon", horizon, "time_horizon"),
        ("--action-dim", action_dim, "action_dim"),
    ):
        if value is None and getattr(fast, stored) is None:
            raise click.UsageError(f"{tokdir} records no {stored}; give {option}")
    ids = [json.loads(line) for line in ids_file if line.strip()]
    actions, valid = fast.decode(ids, horizon=horizon, action_dim=action_dim, on_error=on_error)
    if output:
        np.save(output, actions)
    else:
        np.savetxt(sys.stdout, actions.reshape(len(ids), -1), fmt="%.6g")
    click.echo(f"{int(valid.sum())}/{len(ids)} sequences decoded exactly", err=True)
    if not valid.all():
        shape = f"{horizon or fast.time_horizon}x{action_dim or fast.action_dim}"
        raise click.ClickException(
            f"{len(ids) - int(valid.sum())} of {len(ids)} id sequences are not valid for {tokdir} at {shape} "
            "(ids from another tokenizer, or another horizon / action dim?); their actions are "
            + ("zeros" if on_error == "flag" else "padded or clipped repairs")
        )


@tokenizer.command("cache")
@click.argument("tokdir", required=False, type=click.Path(exists=True, file_okay=False))
@click.argument("datasets", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A loader.json: cache every robot dataset it names, with its horizon and normalization.",
)
@click.option(
    "--horizon",
    type=int,
    default=50,
    show_default=True,
    help="Chunk length in steps (as the loader's horizon).",
)
@click.option(
    "--normalization", type=click.Choice(["quantile", "zscore"]), default="quantile", show_default=True
)
@click.option(
    "--delta-dims",
    default="",
    help="Comma-separated action dims made relative to the state (as the loader's delta_action_dims).",
)
@click.option("--quiet", is_flag=True)
@friendly_errors
def cache(tokdir, datasets, config_path, horizon, normalization, delta_dims, quiet) -> None:
    """Pre-tokenize the FAST ids of the chunk at every step of DATASETS, so the loader does not
    encode at training time. The sidecar file is keyed by the tokenizer, horizon and
    normalization, and used automatically by a loader with the same settings."""
    from vla_data.loader import LoaderConfig, SourceConfig, build_sources
    from vla_data.loader.fast_cache import build_fast_cache
    from vla_data.loader.robot import RobotDataset

    if config_path:
        config = LoaderConfig.load(config_path)
    else:
        if not tokdir or not datasets:
            raise click.UsageError("give TOKDIR and DATASETS, or --config loader.json")
        dims = tuple(int(d) for d in delta_dims.split(",") if d.strip())
        config = LoaderConfig(
            sources=(SourceConfig("robot", tuple(datasets)),),
            fast_tokenizer=tokdir,
            horizon=horizon,
            normalization=normalization,
            delta_action_dims=dims,
            fast_mapping="append",
            use_fast_cache=False,
        )
    sources, _ = build_sources(config)
    for robot in (s for s in sources if isinstance(s, RobotDataset)):
        for d, ds in enumerate(robot.datasets):
            path = build_fast_cache(robot, d, progress=not quiet and sys.stderr.isatty())
            click.echo(
                f"{ds.root}: {len(ds)} chunks of {config.horizon} steps -> {path.relative_to(ds.root)}"
            )
