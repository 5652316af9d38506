"""The `vla-data` command line: a thin click shell over the library."""

from __future__ import annotations

import os

import click

from vla_data import __version__
from vla_data.cli.bench import bench
from vla_data.cli.convert import convert
from vla_data.cli.dataset import demo, info, merge, stats, verify
from vla_data.cli.loader import loader
from vla_data.cli.split import split
from vla_data.cli.tokenizer import tokenizer
from vla_data.cli.view import view


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vla-data")
@click.option(
    "--endpoint-url",
    default=None,
    metavar="URL",
    help="S3-compatible endpoint for s3:// paths (e.g. http://127.0.0.1:8333); sets AWS_ENDPOINT_URL. "
    "Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or ~/.aws.",
)
def main(endpoint_url: str | None) -> None:
    """Turn robot demonstrations (LeRobot, RLDS, HDF5) into Arrow shards and training batches for
    knowledge-insulated VLA models.

    \b
    Typical flow:
      vla-data convert hdf5 episodes/ out/      # source -> shards + manifest
      vla-data info out/                        # what is inside
      vla-data verify out/                      # checksums and indices
      vla-data demo                             # everything, on built-in sample data
    """
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url  # inherited by worker processes too


for command in (convert, info, verify, stats, merge, tokenizer, loader, split, demo, bench, view):
    main.add_command(command)
