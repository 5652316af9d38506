"""WebDataset tar shards as img2dataset writes them: `KEY.jpg` (or png/webp), `KEY.txt` (the
caption), `KEY.json` (metadata, may hold the caption). Members of one sample are consecutive and
share KEY (the path up to the first dot of the file name, WebDataset's rule). Read with `tarfile`
only; a ref is the byte offset of its first member's header, so reading seeks straight to it.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vla_data.errors import SourceError

from .web_sample import WebSample, with_images
from .web_schemas import WebFields

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")


def _split(name: str) -> tuple[str, str]:
    folder, _, base = name.rpartition("/")
    key, _, extension = base.partition(".")
    return (f"{folder}/{key}" if folder else key), extension.lower()


def _members(file: str, start: int = 0) -> Iterator[tarfile.TarInfo]:
    with open(file, "rb") as f:
        f.seek(start)
        try:
            with tarfile.open(fileobj=f, mode="r:") as tar:
                while (member := tar.next()) is not None:
                    tar.members.clear()  # tarfile keeps every header otherwise
                    if member.isfile():
                        yield member
        except tarfile.TarError as e:
            raise SourceError(f"not a readable tar file ({e})", file=file) from e


def scan_tars(files: list[Path], group_size: int) -> Iterator[dict[str, Any]]:
    for file in files:
        ref, key = None, None
        for member in _members(str(file)):
            member_key, _ = _split(member.name)
            if member_key == key:
                continue
            key = member_key
            if ref is not None and ref["count"] == group_size:
                yield ref
                ref = None
            if ref is None:
                ref = {"file": str(file), "start": member.offset, "count": 0}
            ref["count"] += 1
        if ref is not None:
            yield ref


def records_tar(ref: dict[str, Any]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(KEY, {extension: bytes}) for the samples of one ref."""
    sample: dict[str, bytes] = {}
    key, done = None, 0
    with open(ref["file"], "rb") as f:
        f.seek(ref["start"])
        with tarfile.open(fileobj=f, mode="r:") as tar:
            while (member := tar.next()) is not None:
                tar.members.clear()
                if not member.isfile():
                    continue
                member_key, extension = _split(member.name)
                if member_key != key:
                    if key is not None:
                        yield key, sample
                        done += 1
                        if done == ref["count"]:
                            return
                    key, sample = member_key, {}
                sample[extension] = tar.extractfile(member).read()
    if key is not None and done < ref["count"]:
        yield key, sample


def wds_sample(record: dict[str, bytes], sample_id: str, f: WebFields) -> list[WebSample]:
    """A captioning sample: the image member, the caption from `.txt` or the `.json` caption field."""
    images = [record[e] for e in IMAGE_EXTENSIONS if e in record]
    if len(images) != 1:
        raise ValueError(f"expected one image member ({'/'.join(IMAGE_EXTENSIONS)}), found {sorted(record)}")
    caption = record["txt"].decode("utf-8") if "txt" in record else None
    if caption is None and "json" in record:
        caption = json.loads(record["json"]).get(f.caption)
    if not isinstance(caption, str):
        raise ValueError(f"no caption: no .txt member and no {f.caption!r} in .json ({sorted(record)})")
    sample = WebSample(sample_id, "caption", [("user", ""), ("assistant", caption.strip())])
    return [with_images(sample, images, None)]
