"""`vla-data split OUT [--val 5%]`."""

from __future__ import annotations

import click

from vla_data.cli.errors import friendly_errors


@click.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--val", default=None, help="Validation episodes: 5%, 0.05 or a count. Default: the source's splits."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Which episodes --val draws.")
@friendly_errors
def split(out: str, val: str | None, seed: int) -> None:
    """Write OUT/splits.json: the splits the source declared (RLDS train/val, LeRobot info.json),
    or a deterministic --val set of whole episodes. A loader source selects one with "split"."""
    from vla_data.splits import split_dataset

    splits = split_dataset(out, val, seed)
    click.echo(
        f"{out}/splits.json: " + ", ".join(f"{name} {len(ids)} episodes" for name, ids in splits.items())
    )
