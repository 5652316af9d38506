"""A per-process budget for the memory-mapped pages of shard files.

Shards (and the FAST id cache, and node-cache copies of remote shards) are memory-mapped, so a
read is zero-copy and every process shares the page cache. But each page a process touches stays
mapped into it, counted in its RSS (and by container memory accounting) until it is unmapped:
with random access over a dataset larger than memory, a worker would end up mapping the whole
dataset. On a recent kernel one touch maps a whole page-cache folio (up to 2 MiB), so this grows
fast.

Files are mapped here with Python's `mmap` (wrapped zero-copy into pyarrow). `check(budget)` reads
the process's resident file-backed pages (`RssFile`, /proc/self/status, a few microseconds); when
they have grown by more than `budget` bytes since the last release, `release()` drops the
resident pages of every map of this process with madvise(MADV_DONTNEED). The files are read-only
mappings of files nobody writes, so nothing is lost: the page cache keeps the pages (the OS still
evicts them under pressure as it sees fit), and an array that still views a released region reads
the same bytes again on its next touch (a minor fault). Maps are never unmapped while anything
views them. Without /proc (not Linux) `check` does nothing.
"""

from __future__ import annotations

import mmap
import os
import weakref

import pyarrow as pa

DEFAULT_PAGE_BUDGET = 64 << 20  # bytes of mapped shard pages a process may gain before a release


class _ProcessMaps:
    """The maps of this process and its resident file pages right after the last release."""

    def __init__(self) -> None:
        self.maps: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()
        self.pid = -1  # the process `status_fd` and `baseline` belong to (a fork starts over)
        self.status_fd: int | None = None
        self.baseline = 0
        self.releases = 0


_PROCESS = _ProcessMaps()


def map_file(path: str | os.PathLike) -> pa.Buffer:
    """The whole file as a read-only, zero-copy pyarrow buffer over a map that `release()` covers."""
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # ValueError for an empty file
    _PROCESS.maps.add(mapped)
    return pa.py_buffer(mapped)


def resident_file_bytes() -> int | None:
    """This process's resident file-backed pages (RssFile) in bytes; None without /proc."""
    if _PROCESS.pid != os.getpid():
        if _PROCESS.status_fd is not None:
            os.close(_PROCESS.status_fd)  # the parent's /proc/<pid>/status, inherited through fork
            _PROCESS.status_fd = None
        try:
            _PROCESS.status_fd = os.open("/proc/self/status", os.O_RDONLY)
        except OSError:
            return None
        _PROCESS.pid = os.getpid()
        release()  # pages mapped before this process's first check count too
    return _rss_file(_PROCESS.status_fd) if _PROCESS.status_fd is not None else None


def _rss_file(fd: int) -> int:
    status = os.pread(fd, 4096, 0)
    at = status.find(b"RssFile:")
    return int(status[at + 8 : status.index(b"kB", at)]) * 1024 if at >= 0 else 0


def check(budget: int | None) -> bool:
    """Release every map's pages if this process's resident file pages grew by more than
    `budget` bytes since the last release (None: no budget). True when it released."""
    if budget is None:
        return False
    resident = resident_file_bytes()
    if resident is None or resident - _PROCESS.baseline <= budget:
        return False
    release()
    return True


def release() -> None:
    """Drop the resident pages of every map of this process (they are read again when touched)."""
    for mapped in list(_PROCESS.maps):
        try:
            mapped.madvise(mmap.MADV_DONTNEED)
        except (ValueError, OSError):  # closed by its owner: nothing mapped to drop
            pass
    if _PROCESS.status_fd is not None and _PROCESS.pid == os.getpid():
        _PROCESS.baseline = _rss_file(_PROCESS.status_fd)
    _PROCESS.releases += 1


def releases() -> int:
    """How many times this process has released its maps' pages (for tests and benchmarks)."""
    return _PROCESS.releases
