"""Turn library errors into one clear message and a non-zero exit."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from vla_data.errors import VlaDataError

INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)


def friendly_errors(func):
    """Library errors and missing optional dependencies (`pip install 'vla-data[viz]'`) become one
    line and exit 1; Ctrl-C exits 130 without a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (VlaDataError, ValueError, FileNotFoundError, ImportError) as e:
            raise click.ClickException(str(e)) from e
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None

    return wrapper


def kept_shards(out: str | Path) -> int:
    """Closed shards a stopped conversion left in OUT (its own and its finished units')."""
    root = Path(out)
    if not root.is_dir():
        return 0
    return sum(1 for p in root.rglob("shard-*.arrow") if p.parent.name == "shards")


def explain_interrupt(out: str):
    """Wrap a conversion: Ctrl-C says how much is kept and how to continue, and exits 130."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except KeyboardInterrupt:
                target = kwargs.get(out)
                click.echo(
                    f"interrupted: {kept_shards(target)} shards kept in {target}; rerun with --resume to continue",
                    err=True,
                )
                raise click.exceptions.Exit(INTERRUPTED) from None

        return wrapper

    return decorate
