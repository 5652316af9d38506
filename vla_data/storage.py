"""Paths that may be pyarrow filesystem URIs (file://, s3://, gs://, hdfs://) or local paths."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs

from vla_data.errors import VlaDataError


def is_uri(path: str | Path) -> bool:
    return "://" in str(path)


def filesystem(path: str | Path) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of `path` and the path inside it."""
    if not is_uri(path):
        return pafs.LocalFileSystem(), str(Path(path).resolve())
    try:
        return pafs.FileSystem.from_uri(str(path))
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for unknown schemes or credentials
        raise VlaDataError(f"{path}: cannot open this filesystem URI ({e})") from e


def local_path(path: str | Path, *, what: str = "path") -> Path:
    """A local path for `path`; `file://` URIs map to their local file, other schemes are refused
    with what to do instead."""
    if not is_uri(path):
        return Path(path)
    fs, inner = filesystem(path)
    if isinstance(fs, pafs.LocalFileSystem):
        return Path(inner)
    raise VlaDataError(
        f"{path}: a {what} must be local or file:// here; copy it locally first (e.g. `aws s3 sync`)"
    )
