"""The resume rules: `--resume` continues a conversion only with the settings it was started with.

A conversion records what it was started with (the source's `describe()` plus the conversion
options) in its journal, in each unit's record and in the final manifest. `--resume` compares the
new settings with that record and refuses any difference, naming the one setting that differs
with its old and new value: a run killed at `--unit-episodes 2` and resumed with 3 would otherwise
reuse finished units by index and lose episodes; another `--jpeg-quality` would mix encodings.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from vla_data.errors import ShardError


def first_difference(old: Any, new: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted key whose value differs (`convert_options.jpeg_quality`), with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        for name in [*old, *(k for k in new if k not in old)]:
            inner = f"{key}.{name}" if key else str(name)
            if found := first_difference(old.get(name, _ABSENT), new.get(name, _ABSENT), inner):
                return found
        return None
    return None if _normal(old) == _normal(new) else (key, old, new)


class _Absent:
    def __repr__(self) -> str:
        return "not set"


_ABSENT = _Absent()


def _normal(value: Any) -> Any:
    """Tuples and lists compare equal (a JSON round trip turns one into the other)."""
    return json.loads(json.dumps(value, default=str)) if not isinstance(value, _Absent) else value


def setting_name(key: str) -> str:
    """How a user spells a recorded setting: `convert_options.jpeg_quality` -> `--jpeg-quality`."""
    last = key.rsplit(".", 1)[-1]
    if last in ("path", "paths", "root"):
        return f"SRC ({key})"
    if last in ("format",):
        return f"the source format ({key})"
    return _FLAGS.get(last, f"--{last.replace('_', '-')}")


_FLAGS = {"shard_bytes": "--shard-size", "mapping": "--map", "state_keys": "--state-keys"}


def check_same_settings(out: str | Path, old: dict[str, Any], new: dict[str, Any], what: str) -> None:
    """Refuse to resume `what` (e.g. "the finished conversion") with settings other than its own."""
    difference = first_difference(old, new)
    if difference is None:
        return
    key, before, now = difference
    raise ShardError(
        f"{out}: cannot --resume {what} with other settings: {setting_name(key)} was {before!r}, "
        f"now {now!r}; resume with the same settings, or convert into a new OUT (or delete {out})"
    )


def check_unit(out: Path, unit: Path, settings: dict[str, Any], refs: list[dict[str, Any]]) -> None:
    """Record a unit's settings and source slice when it starts; on resume, refuse a unit whose
    record differs, so a finished unit is never reused for other episodes or other options."""
    record_path = unit.with_name(unit.name + ".json")
    record = {"settings": settings, "refs": refs}
    if not record_path.exists():
        if unit.exists():
            raise ShardError(
                f"{unit} has no record of what it converted ({record_path.name} is missing); "
                f"delete {out} and convert again"
            )
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, default=str))
        return
    old = json.loads(record_path.read_text())
    check_same_settings(out, old["settings"], settings, "the interrupted conversion")
    if _normal(old["refs"]) != _normal(refs):
        raise ShardError(
            f"{out}: cannot --resume: {unit.name} converted {_span(old['refs'])} of the source, the "
            f"source now gives it {_span(refs)} (the source changed since the interrupted run); restore "
            f"the source, or convert into a new OUT (or delete {out})"
        )


def _span(refs: list[dict[str, Any]]) -> str:
    if not refs:
        return "no episodes"
    first, last = refs[0], refs[-1]
    name = lambda ref: f"{ref.get('file', '?')}#{ref.get('episode', '?')}"  # noqa: E731
    return f"{len(refs)} episodes ({name(first)} .. {name(last)})"


def note_fresh_start(out: str | Path) -> None:
    """`--resume` into a folder that does not exist: say so instead of resuming nothing silently."""
    warnings.warn(
        f"--resume: {out} does not exist, so there is nothing to resume; starting a fresh conversion",
        stacklevel=3,
    )
