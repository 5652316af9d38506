"""`ShardWriter`: episodes in, size-bounded Arrow shards + `episodes.arrow` + `manifest.json` out."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vla_data import __version__
from vla_data.episode import Episode
from vla_data.errors import ShardError, SourceError
from vla_data.resume import check_same_settings
from vla_data.schema import FORMAT_VERSION, IMAGE_PREFIX, Feature, arrow_schema
from vla_data.shards.episode_rows import EPISODES_SCHEMA, EpisodeRows, episodes_table
from vla_data.shards.journal import JournalState, append_line, load_journal
from vla_data.shards.manifest import (
    EPISODES_FILE,
    MANIFEST_FILE,
    PROGRESS_FILE,
    SHARD_DIR,
    Manifest,
    ShardInfo,
    shard_path,
    write_json_atomic,
)
from vla_data.shards.reader import stats_from_shards

DEFAULT_SHARD_BYTES = 256 * 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class TaskIndex:
    """Task strings numbered in order of first appearance; a dict lookup per episode, not a list scan."""

    def __init__(self, tasks: list[str] | None = None):
        self.tasks: list[str] = []
        self._ids: dict[str, int] = {}
        for task in tasks or []:
            self.index(task)

    def index(self, task: str) -> int:
        found = self._ids.get(task)
        if found is None:
            found = self._ids[task] = len(self.tasks)
            self.tasks.append(task)
        return found

    def __len__(self) -> int:
        return len(self.tasks)


class ShardWriter:
    """Writes episodes (images already encoded) into `OUT/shards/*.arrow` and commits on success.

        with ShardWriter(out, fps=20, features=features, source=source) as writer:
            writer.write(episode, position=i)

    An episode never spans two shards; a shard closes after the episode that crosses
    `target_bytes`. Each closed shard is appended to the journal `OUT/.progress.jsonl`, so a conversion that
    dies can resume from the last closed shard (`resume=True`). `manifest.json` is written only when
    the body of the `with` finished without an exception.
    """

    def __init__(
        self,
        out: str | Path,
        *,
        source: dict[str, Any],
        fps: float | None = None,
        features: dict[str, Feature] | None = None,
        target_bytes: int = DEFAULT_SHARD_BYTES,
        compression: str | None = None,
        resume: bool = False,
        first_episode_index: int = 0,
    ):
        self.out = Path(out)
        # a conversion unit numbers its episodes where they land in the merged dataset
        self.first_episode_index = first_episode_index
        self.source = source
        self.target_bytes = target_bytes
        self.compression = compression
        self.fps: float | None = None
        self.features: dict[str, Feature] | None = None
        self.manifest: Manifest | None = None
        self._tasks = TaskIndex()
        self.shards: list[ShardInfo] = []
        self.episode_rows = EpisodeRows()  # columns, not a dict per episode
        self.skipped: list[dict[str, Any]] = []
        self.consumed = 0  # source positions fully committed in closed shards
        # what the journal already holds: shards, episode rows, tasks, skipped, features
        self._journaled = {"shards": 0, "episodes": 0, "tasks": 0, "skipped": 0, "features": False}
        self._closed_episodes = 0  # episode rows in closed shards
        self._closed_tasks = 0  # tasks used by closed shards (a prefix of `tasks`)
        self._open: dict[str, Any] | None = None
        self._prepare(resume)
        if features is not None and self.features is None:
            self.set_features(fps, features)

    def set_features(self, fps: float | None, features: dict[str, Feature]) -> None:
        """Fix the columns (usually from the first episode); every later episode must match them."""
        if fps is None or fps <= 0:
            raise ShardError(f"fps must be a positive number, got {fps}")
        self.fps = float(fps)
        self.features = dict(features)
        self.schema = arrow_schema(self.features)

    # -- lifecycle -------------------------------------------------------------------------------
    def _prepare(self, resume: bool) -> None:
        self._created_out = not self.out.exists()
        if (self.out / MANIFEST_FILE).exists():
            raise ShardError(f"{self.out} already holds a complete dataset; choose another OUT or delete it")
        journal = self.out / PROGRESS_FILE
        interrupted = journal.exists() or self._only_uncommitted_shards()
        if interrupted and not resume:
            raise ShardError(
                f"{self.out} holds an interrupted conversion; pass --resume to continue it or delete the folder"
            )
        if not interrupted and self.out.exists() and any(self.out.iterdir()):
            raise ShardError(f"{self.out} is not empty and holds no vla-data conversion; choose an empty OUT")
        (self.out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        (self.out / (PROGRESS_FILE + ".tmp")).unlink(missing_ok=True)  # a journal write cut short
        state = load_journal(journal) if journal.exists() else None
        if state is not None:
            self._restore(state)
        else:  # died before its first shard closed: nothing was committed
            for path in (self.out / SHARD_DIR).iterdir():
                path.unlink()

    def _only_uncommitted_shards(self) -> bool:
        """OUT holds nothing but a shards/ folder of our files: a run killed before any commit."""
        if not self.out.is_dir() or SHARD_DIR not in {p.name for p in self.out.iterdir()}:
            return False
        if {p.name for p in self.out.iterdir()} - {SHARD_DIR, PROGRESS_FILE + ".tmp"}:
            return False
        return all(
            p.name.startswith("shard-") and p.name.endswith((".arrow", ".arrow.tmp"))
            for p in (self.out / SHARD_DIR).iterdir()
        )

    @property
    def tasks(self) -> list[str]:
        return self._tasks.tasks

    def _restore(self, state: JournalState) -> None:
        header = state.header
        if header.get("format_version") != FORMAT_VERSION:
            raise ShardError(
                f"{self.out}: the interrupted conversion wrote format_version {header.get('format_version')}, "
                f"this vla-data writes {FORMAT_VERSION}; delete the folder and convert again"
            )
        check_same_settings(self.out, header.get("source") or {}, self.source, "the interrupted conversion")
        if state.features is not None:
            self.set_features(state.fps, {n: Feature.from_json(n, f) for n, f in state.features.items()})
        self._tasks = TaskIndex(state.tasks)
        self.shards = [ShardInfo(**s) for s in state.shards]
        self.episode_rows = EpisodeRows(state.episodes)
        self.skipped = state.skipped
        self.consumed = state.consumed
        self._closed_episodes = len(self.episode_rows)
        self._closed_tasks = len(self.tasks)
        self._journaled = {
            "shards": len(self.shards),
            "episodes": len(self.episode_rows),
            "tasks": len(self.tasks),
            "skipped": len(self.skipped),
            "features": state.features is not None,
        }
        kept = {self.out / s.file for s in self.shards}
        for path in (self.out / SHARD_DIR).iterdir():
            if path not in kept:
                path.unlink()  # half-written shard of the run that died
        for info in self.shards:
            if sha256_file(self.out / info.file) != info.sha256:
                raise ShardError(
                    f"{self.out / info.file} changed since it was written; delete OUT and convert again"
                )

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abandon()
            return
        try:
            self.manifest = self.finish()
        except BaseException:
            self.abandon()
            raise

    # -- writing ---------------------------------------------------------------------------------
    def write(self, episode: Episode, *, position: int) -> None:
        """Append one episode whose images are encoded bytes; `position` is its place in the source."""
        if position < self.consumed:
            return  # already committed before a resume
        if self.features is None:
            raise ShardError("call set_features() before the first write()")
        table = self._episode_table(episode)
        if self._open is None:
            self._open_shard()
        shard = self._open
        shard["writer"].write_table(table)
        self.episode_rows.append(
            {
                "episode_index": self.first_episode_index + len(self.episode_rows),
                "shard": len(self.shards),
                "row_offset": shard["rows"],
                "length": table.num_rows,
                "task_index": self._task_index(episode.task),
                "source_ref": json.dumps(episode.source_ref, sort_keys=True),
            }
        )
        shard["rows"] += table.num_rows
        shard["episodes"] += 1
        shard["last_position"] = position
        if shard["sink"].tell() >= self.target_bytes:
            self._close_shard()

    def skip(self, source_ref: dict[str, Any], reason: str, *, position: int) -> None:
        if position < self.consumed:
            return
        self.skipped.append({"source_ref": source_ref, "reason": reason, "position": position})
        if self._open is None:
            self.consumed = position + 1
            self._save_journal()

    def skip_samples(self, entries: list[dict[str, Any]], *, position: int) -> None:
        """Record single samples left out of the episode at `position` (web data: one bad sample
        never costs its whole group); listed with the episode skips in the manifest."""
        if position < self.consumed:
            return
        self.skipped.extend({**entry, "position": position} for entry in entries)

    def _task_index(self, task: str) -> int:
        return self._tasks.index(task)

    def _episode_table(self, episode: Episode) -> pa.Table:
        length = episode.length
        self._check_features(episode)
        timestamps = episode.timestamps
        if timestamps is None:
            timestamps = np.arange(length, dtype=np.float64) / self.fps
        columns: dict[str, pa.Array] = {
            "episode_index": pa.array(
                np.full(length, self.first_episode_index + len(self.episode_rows), np.int64)
            ),
            "frame_index": pa.array(np.arange(length, dtype=np.int32)),
            "timestamp": pa.array(np.asarray(timestamps, np.float32)),
            "task_index": pa.array(np.full(length, self._task_index(episode.task), np.int32)),
        }
        for name, feature in self.features.items():
            if feature.kind == "image":
                frames = episode.images[name[len(IMAGE_PREFIX) :]]
                columns[name] = pa.array(frames, type=pa.binary())
                continue
            if feature.kind == "text":
                columns[name] = pa.array([str(v) for v in episode.arrays[name]], type=pa.string())
                continue
            if feature.kind == "list":  # an Arrow list array built by the reader (web samples)
                columns[name] = episode.arrays[name].cast(feature.arrow_type())
                continue
            values = np.ascontiguousarray(episode.arrays[name], dtype=np.dtype(feature.dtype))
            if feature.shape == ():
                columns[name] = pa.array(values)
            else:
                flat = pa.array(values.reshape(-1))
                columns[name] = pa.FixedSizeListArray.from_arrays(flat, int(np.prod(feature.shape)))
        return pa.Table.from_pydict(columns, schema=self.schema)

    def _check_features(self, episode: Episode) -> None:
        file = episode.source_ref.get("file", "?")
        ep = episode.source_ref.get("episode", episode.index)
        expected = set(self.features)
        present = set(episode.arrays) | {IMAGE_PREFIX + cam for cam in episode.images}
        if missing := sorted(expected - present):
            raise SourceError(
                f"missing {missing} that earlier episodes have", file=file, episode=ep, key=missing[0]
            )
        if extra := sorted(present - expected):
            raise SourceError(f"has {extra} that earlier episodes lack", file=file, episode=ep, key=extra[0])
        for name, values in episode.arrays.items():
            feature = self.features[name]
            if feature.kind == "list":
                if not isinstance(values, pa.Array) or not values.type.equals(feature.arrow_type()):
                    raise SourceError(
                        f"type {getattr(values, 'type', type(values).__name__)} differs from "
                        f"{feature.arrow_type()} of earlier episodes",
                        file=file,
                        episode=ep,
                        key=name,
                    )
                continue
            if tuple(values.shape[1:]) != feature.shape:
                raise SourceError(
                    f"per-step shape {tuple(values.shape[1:])} differs from {feature.shape} of earlier episodes",
                    file=file,
                    episode=ep,
                    key=name,
                )

    def _open_shard(self) -> None:
        path = self.out / shard_path(len(self.shards))
        tmp = path.with_name(path.name + ".tmp")
        sink = pa.OSFile(str(tmp), "wb")
        options = pa.ipc.IpcWriteOptions(compression=self.compression)
        writer = pa.ipc.new_file(sink, self.schema, options=options)
        self._open = {"path": path, "tmp": tmp, "sink": sink, "writer": writer, "rows": 0, "episodes": 0}

    def _close_shard(self) -> None:
        shard, self._open = self._open, None
        shard["writer"].close()
        shard["sink"].close()
        os.replace(shard["tmp"], shard["path"])
        self.shards.append(
            ShardInfo(
                file=str(shard["path"].relative_to(self.out)),
                rows=shard["rows"],
                episodes=shard["episodes"],
                bytes=shard["path"].stat().st_size,
                sha256=sha256_file(shard["path"]),
            )
        )
        self._closed_episodes += shard["episodes"]
        self.consumed = shard["last_position"] + 1
        self._save_journal()

    def abandon(self) -> None:
        """Drop the shard being written. Closed shards and the journal stay for `--resume`; when
        nothing was committed, remove what this writer created so no half-dataset is left."""
        if self._open is not None:
            self._open["sink"].close()
            self._open["tmp"].unlink(missing_ok=True)
            self._open = None
        if self.shards:
            return
        (self.out / PROGRESS_FILE).unlink(missing_ok=True)
        shard_dir = self.out / SHARD_DIR
        if shard_dir.exists() and not any(shard_dir.iterdir()):
            shard_dir.rmdir()
        if self._created_out and not any(self.out.iterdir()):
            self.out.rmdir()

    def _save_journal(self) -> None:
        """Append what was committed since the last journal line (never rewrite earlier lines)."""
        done = self._journaled
        closed = self.episode_rows[done["episodes"] : self._closed_episodes]
        self._closed_tasks = max([self._closed_tasks] + [row["task_index"] + 1 for row in closed])
        skipped = self.skipped[done["skipped"] :]
        committed = skipped[
            : next((i for i, s in enumerate(skipped) if s["position"] >= self.consumed), None)
        ]
        record: dict[str, Any] = {
            "consumed": self.consumed,
            "shards": [asdict(s) for s in self.shards[done["shards"] :]],
            "episodes": closed,
            "tasks": self.tasks[done["tasks"] : self._closed_tasks],
            "skipped": committed,
        }
        if self.features and not done["features"]:
            record["fps"] = self.fps
            record["features"] = {n: f.to_json() for n, f in self.features.items()}
        append_line(
            self.out / PROGRESS_FILE,
            record,
            header={"format_version": FORMAT_VERSION, "source": self.source},
        )
        self._journaled = {
            "shards": len(self.shards),
            "episodes": self._closed_episodes,
            "tasks": self._closed_tasks,
            "skipped": done["skipped"] + len(committed),
            "features": done["features"] or bool(self.features),
        }

    # -- commit ----------------------------------------------------------------------------------
    def finish(self, *, allow_empty: bool = False) -> Manifest:
        """Close the last shard, compute statistics and commit `episodes.arrow` + `manifest.json`.

        `allow_empty` commits a dataset with no episode (a conversion unit whose episodes were all
        skipped); otherwise that is an error."""
        if self._open is not None:
            self._close_shard()
        if not self.episode_rows and not allow_empty:
            reasons = "; ".join(s["reason"] for s in self.skipped[:3])
            raise ShardError(
                f"no episode was converted into {self.out}" + (f" (skipped: {reasons})" if reasons else "")
            )
        manifest = commit_dataset(
            self.out,
            Manifest(
                fps=self.fps or 0.0,
                features=self.features or {},
                tasks=list(self.tasks),
                shards=self.shards,
                source=self.source,
                skipped=[{k: v for k, v in s.items() if k != "position"} for s in self.skipped],
            ),
            self.episode_rows,
        )
        (self.out / PROGRESS_FILE).unlink(missing_ok=True)
        return manifest


def commit_dataset(
    out: Path, manifest: Manifest, episode_rows: EpisodeRows | list[dict[str, Any]]
) -> Manifest:
    """Write `episodes.arrow`, compute statistics from the shards, then write `manifest.json` last."""
    episodes = episodes_table(episode_rows)
    tmp = out / (EPISODES_FILE + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, EPISODES_SCHEMA) as writer:
        writer.write_table(episodes)
    os.replace(tmp, out / EPISODES_FILE)
    manifest.stats = stats_from_shards(out, manifest.shards, manifest.features)
    manifest.created_by = f"vla-data {__version__}"
    write_json_atomic(out / MANIFEST_FILE, manifest.to_json())
    return manifest
