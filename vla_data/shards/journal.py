"""The resume journal of an unfinished conversion: `OUT/.progress.jsonl`, append-only.

Line 1 is a header (`format_version`, `source`); every later line is what one commit added: the
shards closed since the previous line, their episode rows, the tasks they introduced, the episodes
skipped before them and the new `consumed` position (`fps`/`features` once, when first known).
Each line is appended and fsynced, so the journal grows with the dataset (linear), never rewritten.
A line cut short by a crash is not a commit: `load_journal` drops it (and truncates the file).

    {"format_version": 1, "source": {...}}
    {"consumed": 12, "shards": [{...}], "episodes": [{...}, ...], "tasks": ["fold"], "skipped": []}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class JournalState:
    """Everything the journal committed, replayed in order."""

    header: dict[str, Any]
    fps: float | None = None
    features: dict[str, Any] | None = None
    tasks: list[str] = field(default_factory=list)
    shards: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    consumed: int = 0


def append_line(path: Path, record: dict[str, Any], *, header: dict[str, Any] | None = None) -> None:
    """Append one commit (after the header when the journal is new) and fsync it."""
    text = json.dumps(record, separators=(",", ":")) + "\n"
    if header is not None and not path.exists():
        text = json.dumps(header, separators=(",", ":")) + "\n" + text
    with open(path, "a") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def load_journal(path: Path) -> JournalState | None:
    """The committed state, or None when not even the header was completely written."""
    data = path.read_bytes()
    lines, end = [], 0
    while (newline := data.find(b"\n", end)) >= 0:  # a last line without its newline was cut short
        try:
            lines.append(json.loads(data[end:newline]))
        except json.JSONDecodeError:
            break
        end = newline + 1
    if not lines:
        path.unlink()
        return None
    if end != len(data):
        with open(path, "r+b") as f:  # the next append must start on a fresh line
            f.truncate(end)
    state = JournalState(header=lines[0])
    for record in lines[1:]:
        if "features" in record:
            state.fps, state.features = record["fps"], record["features"]
        state.tasks += record.get("tasks", [])
        state.shards += record.get("shards", [])
        state.episodes += record.get("episodes", [])
        state.skipped += record.get("skipped", [])
        state.consumed = record["consumed"]
    return state
