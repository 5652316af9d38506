"""Checks behind `LoaderConfig`: typed fields, unknown keys with did-you-mean, config-relative paths.

Every problem is a `ConfigError` naming the key (`sources[1].paths`) and, for a config read from a
file, the file: `loader.json: sources[1]: unknown key 'camera' (did you mean 'cameras'?)`.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from vla_data.errors import VlaDataError


class ConfigError(VlaDataError):
    """A loader setting is unknown, of the wrong type or out of range; names the file and the key."""

    def __init__(self, key: str, reason: str, *, file: str | None = None):
        self.key, self.reason, self.file = key, reason, file
        where = ": ".join(str(part) for part in (file, key) if part)
        super().__init__(f"{where}: {reason}" if where else reason)

    def __reduce__(self):
        return (_rebuild_config_error, (self.key, self.reason, self.file))

    def within(self, prefix: str) -> ConfigError:
        """The same error one level up: `weight` inside `sources[2]` becomes `sources[2].weight`."""
        return ConfigError(f"{prefix}.{self.key}" if self.key else prefix, self.reason, file=self.file)

    def in_file(self, file: str | os.PathLike) -> ConfigError:
        return ConfigError(self.key, self.reason, file=str(file))


def _rebuild_config_error(key: str, reason: str, file: str | None) -> ConfigError:
    return ConfigError(key, reason, file=file)


def unknown_keys(given: Iterable[str], known: Iterable[str], where: str = "") -> None:
    """Raise for the first key of `given` that is not in `known`, suggesting the closest known one."""
    known = list(known)
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            raise ConfigError(where, f"unknown key {key!r} ({hint})")


def check_fields(obj: Any) -> None:
    """Every field of the dataclass `obj` holds a value of its annotated type."""
    hints = typing.get_type_hints(type(obj))
    for name in obj.__dataclass_fields__:
        value = getattr(obj, name)
        if not matches(value, hints[name]):
            raise ConfigError(
                name, f"expected {describe(hints[name])}, got {value!r} ({type(value).__name__})"
            )


def matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin is Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict:
        return isinstance(value, dict) and all(
            matches(k, args[0]) and matches(v, args[1]) for k, v in value.items()
        )
    return isinstance(value, origin or hint)


def describe(hint: Any) -> str:
    """`int` -> 'an integer', `tuple[int, ...]` -> 'a list of integers', for messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe(args[0]).split(' ', 1)[1]}s"
        return f"a list of {len(args)} " + ", ".join(describe(a).split(" ", 1)[1] for a in args)
    if origin is dict:
        return f"an object of {describe(args[0]).split(' ', 1)[1]} -> {describe(args[1])}"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    return names.get(hint, f"a {getattr(hint, '__name__', hint)}")


def closest_choice(value: Any, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=1) if isinstance(value, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def is_uri(path: str) -> bool:
    return "://" in path


def resolve_path(value: str, base: Path) -> str:
    """`value` relative to `base` (URIs and absolute paths unchanged, `~` expanded)."""
    if is_uri(value):
        return value
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else base / path)


def require_path(key: str, value: str, resolved: str, base: Path, *, folder: bool = True) -> None:
    """A missing local path is an error saying where it was looked for."""
    if is_uri(resolved):
        return
    ok = Path(resolved).is_dir() if folder else Path(resolved).is_file()
    if not ok:
        what = "folder" if folder else "file"
        raise ConfigError(key, f"no such {what} {resolved} (resolved from {value!r} relative to {base})")
