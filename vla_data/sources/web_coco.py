"""COCO `instances_*.json` (detection): images, `annotations` with `bbox` = [x, y, w, h] pixels and
`category_id`, `categories` id -> name. One detection sample per image with at least one
non-crowd box.

The annotations of an image are spread over the whole file, so the JSON is streamed once into
an on-disk SQLite index (`<tmp>/vla-data-coco-<hash>.sqlite`, keyed by the file's path, size and
mtime, read by the workers) instead of being held in memory: memory stays flat whatever the size
of the file. The process that built the index removes it when it exits.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vla_data.errors import SourceError

from .web_json import iter_object_arrays
from .web_sample import WebSample, with_images
from .web_schemas import xyxy

BATCH = 5000


def index_path(file: Path) -> Path:
    stat = file.stat()
    key = hashlib.sha1(f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"vla-data-coco-{key}.sqlite"


def build_index(file: Path) -> Path:
    """Stream `file` into its SQLite index (once; an existing complete index is reused)."""
    path = index_path(file)
    if path.exists():
        return path
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    db = sqlite3.connect(tmp)
    db.executescript(
        "CREATE TABLE images (id INTEGER, file TEXT, height INTEGER, width INTEGER);"
        "CREATE TABLE boxes (image INTEGER, x REAL, y REAL, w REAL, h REAL, category INTEGER);"
        "CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT);"
    )
    pending: dict[str, list] = {"images": [], "boxes": [], "categories": []}
    sql = {
        "images": "INSERT INTO images VALUES (?, ?, ?, ?)",
        "boxes": "INSERT INTO boxes VALUES (?, ?, ?, ?, ?, ?)",
        "categories": "INSERT INTO categories VALUES (?, ?)",
    }
    try:
        with open(file, "rb") as f:
            for key, item in iter_object_arrays(f, str(file)):
                if key == "images":
                    pending["images"].append(
                        (item["id"], item["file_name"], item.get("height"), item.get("width"))
                    )
                elif key == "annotations":
                    if item.get("iscrowd"):
                        continue
                    x, y, w, h = item["bbox"]
                    pending["boxes"].append((item["image_id"], x, y, w, h, item["category_id"]))
                elif key == "categories":
                    pending["categories"].append((item["id"], item["name"]))
                table = {"images": "images", "annotations": "boxes", "categories": "categories"}.get(key)
                if table and len(pending[table]) >= BATCH:
                    db.executemany(sql[table], pending[table])
                    pending[table].clear()
        for table, rows in pending.items():
            db.executemany(sql[table], rows)
        db.execute("CREATE INDEX boxes_by_image ON boxes (image)")
        db.commit()
        db.close()
        os.replace(tmp, path)
        atexit.register(path.unlink, missing_ok=True)
    except (KeyError, TypeError, ValueError) as e:
        db.close()
        tmp.unlink(missing_ok=True)
        raise SourceError(f"not a COCO instances file ({type(e).__name__}: {e})", file=str(file)) from e
    except BaseException:
        db.close()
        tmp.unlink(missing_ok=True)
        raise
    return path


def scan_coco(file: Path, group_size: int) -> Iterator[dict[str, Any]]:
    db = sqlite3.connect(build_index(file))
    try:
        rows = db.execute("SELECT rowid FROM images WHERE id IN (SELECT image FROM boxes) ORDER BY rowid")
        ref = None
        for (rowid,) in rows:
            if ref is None:
                ref = {
                    "file": str(file),
                    "index": str(index_path(file)),
                    "start": rowid,
                    "stop": rowid,
                    "count": 0,
                }
            ref["stop"], ref["count"] = rowid, ref["count"] + 1
            if ref["count"] == group_size:
                yield ref
                ref = None
        if ref is not None:
            yield ref
    finally:
        db.close()


def records_coco(ref: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    db = sqlite3.connect(ref["index"])
    try:
        names = dict(db.execute("SELECT id, name FROM categories"))
        images = db.execute(
            "SELECT id, file, height, width FROM images WHERE rowid BETWEEN ? AND ? ORDER BY rowid",
            (ref["start"], ref["stop"]),
        ).fetchall()
        for image_id, file, height, width in images:
            boxes = db.execute(
                "SELECT x, y, w, h, category FROM boxes WHERE image = ? ORDER BY rowid", (image_id,)
            ).fetchall()
            if boxes:
                record = {"file": file, "height": height, "width": width, "boxes": boxes, "names": names}
                yield str(image_id), record
    finally:
        db.close()


def coco_sample(record: dict[str, Any], sample_id: str, root: Path) -> list[WebSample]:
    sample = with_images(WebSample(sample_id, "detection"), [record["file"]], root)
    if record["height"] and tuple(sample.image_sizes[0]) != (record["height"], record["width"]):
        raise ValueError(
            f"image is {sample.image_sizes[0][1]}x{sample.image_sizes[0][0]}, the annotations say "
            f"{record['width']}x{record['height']}"
        )
    for x, y, w, h, category in record["boxes"]:
        if category not in record["names"]:
            raise ValueError(f"category_id {category} is not in `categories`")
        sample.boxes.append(xyxy([x, y, w, h], "xywh"))
        sample.box_labels.append(record["names"][category])
        sample.box_image.append(0)
    return [sample]
