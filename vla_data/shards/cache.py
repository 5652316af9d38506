"""A node-local cache of remote shards: fetched whole once, sha256-checked, bounded, least recently
used out first; shared by every DataLoader worker and every process of the node that points at
the same directory.

    cache_dir/<sha256>.arrow     a complete, verified shard (named by content, so any URI holding
                                 the same shard shares it, and a changed shard is never served stale)
    cache_dir/<sha256>.lock      serialises the download of that shard across processes
    cache_dir/.evict.lock        serialises eviction
    cache_dir/*.part             a download in progress (its own name per process)

A download goes to a `.part` file, is hashed while it streams, and is committed by `os.replace`,
so a reader never sees half a shard. Recency is the file's mtime, refreshed on use. Eviction
unlinks files; a process that still maps an evicted shard keeps reading it (POSIX semantics) until
it drops it, which `ShardDataset` does within a second.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vla_data.errors import ShardError
from vla_data.shards.access import ReadCounter
from vla_data.shards.manifest import ShardInfo

DEFAULT_CACHE_LIMIT = 32 * 2**30
BLOCK = 1 << 22


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vla-data" / "shards"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class ShardCache:
    """Whole shards under `directory`, at most `limit` bytes of them (one shard over the limit
    may stay while it is the one in use: `limit` must hold the largest shard)."""

    def __init__(self, directory: str | Path, limit: int):
        self.directory = Path(directory)
        self.limit = int(limit)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, info: ShardInfo) -> Path:
        return self.directory / f"{info.sha256}.arrow"

    def touch(self, path: Path) -> bool:
        """Mark `path` used now; False when it is not (or no longer) in the cache."""
        try:
            os.utime(path)
            return True
        except FileNotFoundError:
            return False

    def fetch(self, info: ShardInfo, filesystem, remote_path: str, counter: ReadCounter) -> Path:
        """The local path of shard `info`, downloading it first if no process has."""
        path = self.path(info)
        if self.touch(path):
            return path
        with _locked(self.directory / f"{info.sha256}.lock"):
            if not self.touch(path):  # another worker may have fetched it while we waited
                self._download(info, filesystem, remote_path, path, counter)
        self.evict(keep=path)
        return path

    def _download(self, info: ShardInfo, filesystem, remote_path: str, path: Path, counter) -> None:
        part = path.with_name(f"{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
        digest, size = hashlib.sha256(), 0
        try:
            with filesystem.open_input_stream(remote_path) as src, open(part, "wb") as dst:
                while block := src.read(BLOCK):
                    digest.update(block)
                    dst.write(block)
                    size += len(block)
            counter.bytes += size
            counter.requests += 1
            if size != info.bytes or digest.hexdigest() != info.sha256:
                raise ShardError(
                    f"{remote_path}: fetched {size} bytes with sha256 {digest.hexdigest()[:12]}..., the "
                    f"manifest says {info.bytes} bytes, {info.sha256[:12]}... (changed or corrupt upload; "
                    "run `vla-data verify` on it)"
                )
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove least recently used shards until the cache holds at most `limit` bytes."""
        removed = []
        with _locked(self.directory / ".evict.lock"):
            entries = []
            for path in self.directory.glob("*.arrow"):
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                entries.append((stat.st_mtime_ns, stat.st_size, path))
            total = sum(size for _, size, _ in entries)
            for _, size, path in sorted(entries):
                if total <= self.limit:
                    break
                if path == keep:
                    continue
                path.unlink(missing_ok=True)
                removed.append(path)
                total -= size
        return removed

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.directory.glob("*.arrow"))
