"""JSON views of one converted dataset: summary, histograms, episode pages, numeric arrays, frames.

Every function reads only what its view shows: the summary is the manifest, an episode page is a
slice of the episode index, an episode is that episode's numeric columns, a frame is one cell of
one shard. Histograms read a bounded sample of episodes, so they cost the same on any dataset size.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pyarrow as pa

from vla_data.errors import VlaDataError
from vla_data.schema import Feature
from vla_data.shards import ShardDataset

EPISODES_PER_PAGE = 50
HISTOGRAM_BINS = 30
HISTOGRAM_EPISODES = 64  # histograms come from at most this many evenly spaced episodes
FLOAT_DIGITS = 6
LIST_PAGE = 200  # tasks, shards and skipped episodes per page
LISTS = ("tasks", "shards", "skipped")
CURVE_KINDS = ("action", "state", "scalar", "array")


class EpisodeTables:
    """The last few episode tables of a dataset. Local tables are zero-copy slices of memory-mapped
    shards; a remote one is one ranged read, kept so a playing episode is not fetched per frame."""

    def __init__(self, ds: ShardDataset, size: int = 4):
        self.ds, self.size = ds, size
        self._tables: OrderedDict[int, pa.Table] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, episode: int) -> pa.Table:
        with self._lock:
            if episode in self._tables:
                self._tables.move_to_end(episode)
                return self._tables[episode]
            table = self.ds.episode_table(episode)
            self._tables[episode] = table
            while len(self._tables) > self.size:
                self._tables.popitem(last=False)
            return table


class NotFound(VlaDataError):
    """A view of something that does not exist (an episode, camera or frame out of range)."""


def floats(values: np.ndarray) -> list:
    """A numeric array as nested lists of rounded floats; NaN and inf become None (strict JSON)."""
    values = np.asarray(values, np.float64)
    out = np.round(values, FLOAT_DIGITS).astype(object)
    out[~np.isfinite(values)] = None
    return out.tolist()


def numeric_features(ds: ShardDataset) -> list[Feature]:
    """Features plotted as curves: fixed-size numbers per step (not images, text or lists)."""
    return [f for f in ds.features.values() if f.kind in CURVE_KINDS and np.dtype(f.dtype).kind in "fiub"]


def cameras(ds: ShardDataset) -> list[str]:
    return [name for name, f in ds.features.items() if f.kind == "image"]


def dim_names(feature: Feature) -> list[str]:
    size = int(np.prod(feature.shape)) if feature.shape else 1
    if feature.names and len(feature.names) == size:
        return [str(n) for n in feature.names]
    return [str(i) for i in range(size)] if feature.shape else [feature.name]


def summary(ds: ShardDataset) -> dict[str, Any]:
    """Features, tasks, shards, statistics and skipped episodes: the manifest, nothing else."""
    m = ds.manifest
    return {
        "path": ds.uri or str(ds.root),
        "format_version": m.format_version,
        "created_by": m.created_by,
        "source": shorten(m.source),
        "fps": m.fps,
        "episodes": m.num_episodes,
        "frames": m.num_frames,
        "features": {
            name: {**f.to_json(), "dim_names": dim_names(f) if f.kind in CURVE_KINDS else None}
            for name, f in m.features.items()
        },
        "cameras": cameras(ds),
        "bytes": sum(s.bytes for s in m.shards),
        **{name: listing(ds, name, 0) for name in LISTS},
        "stats": {
            name: {key: floats(value) if isinstance(value, list) else value for key, value in stats.items()}
            for name, stats in m.stats.items()
        },
        "episodes_per_page": EPISODES_PER_PAGE,
    }


def shorten(value: Any, items: int = 20) -> Any:
    """`value` with long lists cut to their first `items` (a source may list thousands of files)."""
    if isinstance(value, dict):
        return {k: shorten(v, items) for k, v in value.items()}
    if isinstance(value, list) and len(value) > items:
        return [shorten(v, items) for v in value[:items]] + [f"... {len(value) - items} more"]
    return value


def listing(ds: ShardDataset, name: str, page: int, size: int = LIST_PAGE) -> dict[str, Any]:
    """One page of the manifest's tasks, shards or skipped episodes (a dataset may have 100k tasks)."""
    if name not in LISTS:
        raise NotFound(f"no list {name!r}; lists: {list(LISTS)}")
    m = ds.manifest
    items = {"tasks": m.tasks, "shards": m.shards, "skipped": m.skipped}[name]
    pages = max(1, -(-len(items) // size))
    if not 0 <= page < pages:
        raise NotFound(f"{ds.uri or ds.root}: no {name} page {page}; it has pages 0..{pages - 1}")
    chunk = items[page * size : (page + 1) * size]
    return {
        "page": page,
        "pages": pages,
        "total": len(items),
        "start": page * size,
        "items": [vars(s) for s in chunk] if name == "shards" else list(chunk),
    }


def histograms(ds: ShardDataset) -> dict[str, Any]:
    """Per-dimension histograms of every numeric feature over a bounded sample of episodes.

    Bin edges span the manifest's min..max when known, so the bars line up with the statistics table.
    """
    sample = np.unique(
        np.linspace(0, ds.num_episodes - 1, min(HISTOGRAM_EPISODES, ds.num_episodes)).astype(int)
    )
    features = numeric_features(ds)
    names = [f.name for f in features]
    columns: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for episode in sample:
        data = ds.episode(int(episode), names)
        for f in features:
            columns[f.name].append(np.asarray(data[f.name], np.float64).reshape(len(data[f.name]), -1))
    out: dict[str, Any] = {}
    for f in features:
        values = np.concatenate(columns[f.name]) if columns[f.name] else np.zeros((0, 1))  # [N, D]
        stats = ds.manifest.stats.get(f.name, {})
        dims = []
        for d in range(values.shape[1]):
            column = values[:, d][np.isfinite(values[:, d])]
            lo = float(stats["min"][d]) if "min" in stats else float(column.min(initial=0.0))
            hi = float(stats["max"][d]) if "max" in stats else float(column.max(initial=0.0))
            if hi <= lo:
                hi = lo + 1e-9
            counts, _ = np.histogram(np.clip(column, lo, hi), bins=HISTOGRAM_BINS, range=(lo, hi))
            dims.append({"lo": lo, "hi": hi, "counts": counts.tolist()})
        out[f.name] = {"dims": dims, "frames": int(len(values))}
    return {"episodes_sampled": int(len(sample)), "bins": HISTOGRAM_BINS, "features": out}


def check_episode(ds: ShardDataset, episode: int) -> None:
    if not 0 <= episode < ds.num_episodes:
        raise NotFound(f"{ds.uri or ds.root}: no episode {episode}; it has episodes 0..{ds.num_episodes - 1}")


def episode_page(ds: ShardDataset, page: int, size: int = EPISODES_PER_PAGE) -> dict[str, Any]:
    """One page of the episode index: length, task, shard and source of each episode."""
    pages = max(1, -(-ds.num_episodes // size))
    if not 0 <= page < pages:
        raise NotFound(f"{ds.uri or ds.root}: no episode page {page}; it has pages 0..{pages - 1}")
    start = page * size
    stop = min(start + size, ds.num_episodes)
    shards = ds.manifest.shards
    return {
        "page": page,
        "pages": pages,
        "total": ds.num_episodes,
        "episodes": [
            {
                "index": e,
                "length": int(ds.episode_length[e]),
                "task": ds.task(e),
                "shard": shards[int(ds.episode_shard[e])].file,
                "source": ds.source_ref(e),
            }
            for e in range(start, stop)
        ],
    }


def episode_arrays(ds: ShardDataset, episode: int) -> dict[str, Any]:
    """The numeric columns of one episode (`[T, D]` per feature) and what the player needs."""
    check_episode(ds, episode)
    features = numeric_features(ds)
    data = ds.episode(episode, ["timestamp", *(f.name for f in features)])
    length = int(ds.episode_length[episode])
    return {
        "index": episode,
        "length": length,
        "task": ds.task(episode),
        "fps": ds.manifest.fps,
        "source": ds.source_ref(episode),
        "cameras": [
            {
                "name": name,
                "encoding": ds.features[name].encoding,
                "height": ds.features[name].height,
                "width": ds.features[name].width,
            }
            for name in cameras(ds)
        ],
        "timestamp": floats(data["timestamp"]),
        "series": {
            f.name: {
                "kind": f.kind,
                "names": dim_names(f),
                "values": floats(data[f.name].reshape(length, -1)),
            }
            for f in features
        },
    }


def frame(
    ds: ShardDataset, tables: EpisodeTables, episode: int, camera: str, index: int
) -> tuple[bytes, str]:
    """The stored bytes of one camera frame and their MIME type (no decode, no re-encode)."""
    check_episode(ds, episode)
    feature = ds.features.get(camera)
    if feature is None or feature.kind != "image":
        raise NotFound(f"{ds.uri or ds.root}: no camera {camera!r}; cameras: {cameras(ds)}")
    length = int(ds.episode_length[episode])
    if not 0 <= index < length:
        raise NotFound(f"{ds.uri or ds.root}: episode {episode} has frames 0..{length - 1}, not {index}")
    data = tables.get(episode).column(camera)[index].as_py()
    return data, mime_type(data)


def mime_type(data: bytes) -> str:
    return "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
