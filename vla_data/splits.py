"""Train / validation splits of a converted dataset, by episode: `OUT/splits.json`.

Splits the source declares (RLDS `train`/`val` files, LeRobot `splits` in info.json) are kept from
the episodes' source references; `make_split` draws a deterministic validation set for the rest.
The loader reads `split` in a source config from this file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vla_data.errors import VlaDataError

SPLITS_FILE = "splits.json"


def source_splits(ds) -> dict[str, list[int]] | None:
    """Episode ids per split as the source declared them, or None when it declared none."""
    source = ds.manifest.source or {}
    names: list[str | None] = []
    if source.get("format") == "rlds":
        names = [
            str(ds.source_ref(e).get("episode", "")).partition("/")[0] or None for e in range(ds.num_episodes)
        ]
    elif source.get("format") == "lerobot":
        info_path = Path(str(source.get("path", ""))) / "meta" / "info.json"
        if not info_path.is_file():
            return None
        ranges = json.loads(info_path.read_text()).get("splits") or {}
        bounds = {name: tuple(int(x) for x in str(r).split(":")) for name, r in ranges.items()}
        for e in range(ds.num_episodes):
            index = int(ds.source_ref(e).get("episode", -1))
            names.append(next((n for n, (a, b) in bounds.items() if a <= index < b), None))
    if not names or any(n is None for n in names):
        return None
    splits: dict[str, list[int]] = {}
    for e, name in enumerate(names):
        splits.setdefault(str(name), []).append(e)
    return splits


def parse_fraction(text: str) -> float | int:
    """`5%` or `0.05` -> a fraction of the episodes; `12` -> that many episodes."""
    try:
        if text.endswith("%"):
            value: float | int = float(text[:-1]) / 100
        elif "." in text:
            value = float(text)
        else:
            value = int(text)
    except ValueError:
        raise VlaDataError(
            f"--val {text!r}: give a percentage (5%), a fraction (0.05) or an episode count (12)"
        ) from None
    if (isinstance(value, float) and not 0 < value < 1) or (isinstance(value, int) and value < 1):
        raise VlaDataError(f"--val {text!r} must be between 0% and 100% (or at least 1 episode)")
    return value


def make_split(num_episodes: int, val: float | int, seed: int = 0) -> dict[str, list[int]]:
    """A deterministic validation set of episodes (same seed, same episodes), the rest is train."""
    count = val if isinstance(val, int) else max(1, round(val * num_episodes))
    if count >= num_episodes:
        raise VlaDataError(f"a validation set of {count} episodes leaves none of {num_episodes} for training")
    chosen = np.random.default_rng(seed).permutation(num_episodes)[:count]
    is_val = np.zeros(num_episodes, bool)
    is_val[chosen] = True
    return {"train": np.flatnonzero(~is_val).tolist(), "val": np.flatnonzero(is_val).tolist()}


def write_splits(out: str | Path, splits: dict[str, list[int]], made_by: dict[str, Any]) -> Path:
    path = Path(out) / SPLITS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"made_by": made_by, "splits": splits}) + "\n")
    tmp.replace(path)
    return path


def split_dataset(out: str | Path, val: str | None = None, seed: int = 0) -> dict[str, list[int]]:
    """What `vla-data split` does: keep the source's splits, or (with `val`) draw train / val."""
    from vla_data.shards import ShardDataset

    ds = ShardDataset(out)
    if val is None:
        splits = source_splits(ds)
        if splits is None:
            raise VlaDataError(f"{out}: the source declared no splits; give --val (e.g. --val 5%)")
        write_splits(out, splits, {"from": "source"})
        return splits
    splits = make_split(ds.num_episodes, parse_fraction(val), seed)
    write_splits(out, splits, {"val": val, "seed": seed})
    return splits


def load_splits(root: str | Path) -> dict[str, list[int]] | None:
    path = Path(root) / SPLITS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())["splits"]
