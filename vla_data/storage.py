"""Paths that may be pyarrow filesystem URIs (file://, s3://, gs://, hdfs://) or local paths.

Credentials and endpoints come from the usual places, in this order: `storage_options` (keyword
arguments of pyarrow's `S3FileSystem` / `GcsFileSystem`, plus `endpoint_url`), the URI's query
(`?endpoint_override=...&scheme=http`), the environment (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL[_S3]`, which `vla-data
--endpoint-url` sets) and the SDK's own chain (~/.aws, instance roles). They are never printed:
`display_uri` is what messages show.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from vla_data.errors import VlaDataError


def is_uri(path: str | Path) -> bool:
    return "://" in str(path)


def display_uri(path: str | Path) -> str:
    """`path` without a query or user info, for messages and manifests."""
    if not is_uri(path):
        return str(path)
    parts = urlsplit(str(path))
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


def _endpoint(options: dict[str, Any]) -> dict[str, Any]:
    """`endpoint_url` (or AWS_ENDPOINT_URL[_S3]) as pyarrow's endpoint_override + scheme."""
    url = options.pop("endpoint_url", None)
    if url is None and "endpoint_override" not in options:
        url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if url:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        options.setdefault("endpoint_override", parts.netloc)
        options.setdefault("scheme", parts.scheme)
    return options


def filesystem(
    path: str | Path, storage_options: dict[str, Any] | None = None
) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of `path` and the path inside it."""
    if not is_uri(path):
        return pafs.LocalFileSystem(), str(Path(path).resolve())
    scheme = str(path).split("://", 1)[0]
    options = dict(storage_options or {})
    try:
        if scheme == "s3":
            options = _endpoint(options)
            parts = urlsplit(str(path))
            if options:
                if "endpoint_override" in options:
                    options.setdefault("region", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
                inner = f"{parts.hostname or parts.netloc}{parts.path}".rstrip("/")
                return pafs.S3FileSystem(**options), inner
        elif scheme in ("gs", "gcs") and options:
            parts = urlsplit(str(path))
            return pafs.GcsFileSystem(**options), f"{parts.netloc}{parts.path}".rstrip("/")
        elif options:
            raise VlaDataError(
                f"{display_uri(path)}: storage_options are only understood for s3:// and gs://"
            )
        fs, inner = pafs.FileSystem.from_uri(str(path))
        return fs, inner.rstrip("/")
    except VlaDataError:
        raise
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError / TypeError for bad schemes or options
        reason = str(e).replace(str(path), display_uri(path))
        raise VlaDataError(
            f"{display_uri(path)}: cannot open this filesystem URI ({reason}); check the scheme, "
            "the endpoint (--endpoint-url / storage_options) and the credentials"
        ) from e


def local_path(path: str | Path, *, what: str = "path") -> Path:
    """A local path for `path`; `file://` URIs map to their local file, other schemes are refused
    with what to do instead."""
    if not is_uri(path):
        return Path(path)
    fs, inner = filesystem(path)
    if isinstance(fs, pafs.LocalFileSystem):
        return Path(inner)
    raise VlaDataError(
        f"{display_uri(path)}: a {what} must be local or file:// here; copy it locally first (e.g. `aws s3 sync`)"
    )


def is_local(path: str | Path) -> bool:
    """A local path or a file:// URI."""
    return not is_uri(path) or str(path).startswith("file://")
