"""Progress bars for long commands: shown on a terminal, never written into logs or pipes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, *, total: int | None = None, unit: str = "shard") -> Iterable[T]:
    """`items`, with a tqdm bar on stderr when stderr is a terminal (tqdm's `disable=None`)."""
    return tqdm(items, desc=desc, total=total, unit=unit, disable=None, leave=False)
