"""Turn library errors into one clear message and a non-zero exit."""

from __future__ import annotations

import functools

import click

from vla_data.errors import VlaDataError


def friendly_errors(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (VlaDataError, ValueError, FileNotFoundError) as e:
            raise click.ClickException(str(e)) from e

    return wrapper
