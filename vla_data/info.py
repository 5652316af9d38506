"""Human-readable and JSON summaries of a converted dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_data.shards.manifest import load_manifest
from vla_data.shards.reader import ShardDataset
from vla_data.storage import is_uri


def dataset_summary(root: str | Path) -> dict[str, Any]:
    m = ShardDataset(root, cache_limit=0).manifest if is_uri(root) else load_manifest(root)
    return {
        "path": str(root),
        "format_version": m.format_version,
        "created_by": m.created_by,
        "source_format": m.source.get("format"),
        "episodes": m.num_episodes,
        "frames": m.num_frames,
        "fps": m.fps,
        "tasks": m.tasks,
        "shards": len(m.shards),
        "bytes": sum(s.bytes for s in m.shards),
        "features": {name: f.to_json() for name, f in m.features.items()},
        "skipped": m.skipped,
    }


def describe_dataset(root: str | Path) -> str:
    s = dataset_summary(root)
    lines = [
        f"dataset   {s['path']}  (vla-data format {s['format_version']}, from {s['source_format']})",
        f"episodes  {s['episodes']}    frames {s['frames']}    fps {s['fps']:g}    "
        f"shards {s['shards']} ({s['bytes'] / 1e6:.1f} MB)",
        f"tasks     {len(s['tasks'])}: "
        + "; ".join(repr(t) for t in s["tasks"][:5])
        + (" ..." if len(s["tasks"]) > 5 else ""),
        "features:",
    ]
    width = max(len(n) for n in s["features"])
    for name, f in s["features"].items():
        detail = (
            f"{f['encoding']} {f['height']}x{f['width']}"
            if f["kind"] == "image"
            else f"{f['dtype']} {tuple(f['shape'])}"
        )
        if f.get("original_height"):
            detail += f" (source {f['original_height']}x{f['original_width']})"
        lines.append(f"  {name:<{width}}  {f['kind']:<6}  {detail}")
    if s["skipped"]:
        lines.append(f"skipped   {len(s['skipped'])} episodes:")
        lines += [f"  {item['reason']}" for item in s["skipped"][:10]]
    return "\n".join(lines)
