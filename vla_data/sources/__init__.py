"""Readers of source formats. Each yields `Episode`s one at a time through the `Source` protocol."""

from __future__ import annotations

import re
from typing import Any, Protocol


class Source(Protocol):
    """A source dataset: a cheap list of picklable episode references, each read on its own.

    `read` runs in worker processes, so a source holds only configuration, never open files.
    """

    def describe(self) -> dict[str, Any]:
        """Format, path and options: stored in the manifest and compared on `--resume`."""
        ...

    def episode_refs(self) -> list[dict[str, Any]]: ...

    def read(self, ref: dict[str, Any]) -> Any:
        """The `Episode` behind `ref`; raises `SourceError` naming file, episode and key."""
        ...

    # Optional: `feature_names() -> {feature: per-dimension names}`, recorded in the manifest.


def natural_key(name: str) -> list[Any]:
    """Sort key that orders `demo_2` before `demo_10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
