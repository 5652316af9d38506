"""`vla-data info | verify | stats | demo`."""

from __future__ import annotations

import json

import click

from vla_data.cli.errors import friendly_errors


@click.command()
@click.argument("out")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@friendly_errors
def info(out: str, as_json: bool) -> None:
    """Summarise a converted dataset: episodes, frames, tasks, features, shards. OUT may be a
    pyarrow filesystem URI (file://, s3://, ...)."""
    from vla_data.info import dataset_summary, describe_dataset

    click.echo(json.dumps(dataset_summary(out), indent=1) if as_json else describe_dataset(out))


@click.command()
@click.argument("out")
@click.option("--json", "as_json", is_flag=True, help='Print {"dataset", "ok", "problems"} as JSON.')
@click.option(
    "--deep",
    is_flag=True,
    help="Also decode every stored frame strictly; names the first bad frame per camera (shard, row, column).",
)
@friendly_errors
def verify(out: str, as_json: bool, deep: bool) -> None:
    """Check every shard's sha256, row counts and episode/frame indices against the manifest
    (with --deep, also decode every frame).

    Exits non-zero and lists each problem when anything disagrees. OUT may be a URI (s3://...):
    shards are hashed as they stream, never stored.
    """
    from vla_data.shards import verify_dataset
    from vla_data.storage import display_uri

    problems = verify_dataset(out, deep=deep)
    out = display_uri(out)  # a URI's query may hold credentials
    if as_json:
        click.echo(json.dumps({"dataset": out, "ok": not problems, "problems": problems}, indent=1))
        if problems:
            raise click.exceptions.Exit(1)
        return
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''} found"
        raise click.ClickException(f"{out}: {count}; the first: {problems[0]}")
    click.echo(f"{out}: OK")


@click.command()
@click.argument("out")
@click.option("--json", "as_json", is_flag=True, help="Print every statistic of every feature as JSON.")
@click.option("--dims", default=None, help="Only these dims: 0,3,5 or 0:8 (default: all).")
@friendly_errors
def stats(out: str, as_json: bool, dims: str | None) -> None:
    """Recompute per-dimension statistics (mean, std, min, max, q01..q99) and store them in the
    manifest; prints all of them for every dim (a row per dim)."""
    from vla_data.shards.reader import recompute_stats
    from vla_data.stats_table import format_stats_table, parse_dims, select_dims

    selected = parse_dims(dims)  # before the recompute: a bad --dims fails at once
    result = select_dims(recompute_stats(out), selected)
    click.echo(json.dumps(result, indent=1) if as_json else format_stats_table(result))


@click.command()
@click.option(
    "--out",
    default="vla-data-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for everything the demo makes.",
)
@friendly_errors
def demo(out: str) -> None:
    """Run the whole pipeline on built-in sample data: write ALOHA-layout HDF5 episodes, convert
    them to shards, verify, and print what was made."""
    from vla_data.demo import run_demo

    run_demo(out, echo=click.echo)


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="New dataset folder (or URI in the inputs' bucket).")
@friendly_errors
def merge(inputs, output) -> None:
    """Concatenate converted datasets with the same features and fps into one: episodes are
    renumbered, task lists merged and statistics recomputed. Use it to join pieces converted on
    different machines. On object storage (inputs and output in one bucket) shards that need no
    renumbering are copied server side."""
    from vla_data.info import describe_dataset
    from vla_data.shards.merge import merge_datasets

    merge_datasets(list(inputs), output)
    click.echo(describe_dataset(output))
