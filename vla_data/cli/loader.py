"""`vla-data loader check CONFIG`."""

from __future__ import annotations

import json

import click

from vla_data.cli.errors import friendly_errors


@click.group()
def loader() -> None:
    """Inspect a loader config (loader.json) before training on it."""


@loader.command("check")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--samples", type=int, default=32, show_default=True, help="Samples per source to measure.")
@friendly_errors
def check(config: str, as_json: bool, samples: int) -> None:
    """Per source: samples, weight and share, camera -> slot mapping, normalization, FAST cache,
    the longest token sequence against max_tokens, and one sample's tokens decoded with prefix /
    postfix / loss / FAST positions marked. Exits 1 when a sequence exceeds max_tokens."""
    from vla_data.loader.check import check_loader, format_report

    report = check_loader(config, samples=samples)
    click.echo(json.dumps(report, indent=1) if as_json else format_report(report))
    if not report["ok"]:
        raise click.exceptions.Exit(1)
