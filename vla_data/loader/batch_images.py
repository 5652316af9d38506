"""The image stage of a robot batch: every row's frames decoded straight into the batch, on a few
threads of the process that builds it.

For each model slot of a dataset, each row gets its frame decoded into its batch row
(`images.decode_into`), or a blank (zero) frame where the dataset has no camera for the slot. A
frame that cannot be decoded is an error naming shard, row and column, or (bad_images="mask") a
blank frame whose mask is False, counted in `images_dropped`.

Decoding releases the GIL (simplejpeg, PIL), so with `decode_threads` > 1 that many threads (the
caller's and a pool's) take the frames one at a time. Each row is written by one thread only and
decoding is deterministic, so the batch is the same bytes with any number of threads; failures are
reported once every thread is done, the first in (slot, row) order, exactly as one thread would.
The pool belongs to the process that made it (keyed by pid): a DataLoader worker forked from a
process with a pool makes its own, never the parent's, whose threads do not exist in the child.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch

from vla_data.images import decode_into

if TYPE_CHECKING:
    from .collate import BatchArrays
    from .robot import RobotDataset

AUTO_THREADS = 4  # decode_threads="auto" in the main process: at most this many, at most the CPUs
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (pid, threads) -> pool of threads - 1


def decode_threads(setting: int | str) -> int:
    """Threads decoding a batch's frames in this process: `setting`, or for "auto" 1 inside a
    DataLoader worker (the workers already use the cores) and up to `AUTO_THREADS` (at most the
    CPUs this process may run on) in the main process, i.e. with num_workers=0."""
    if setting != "auto":
        return int(setting)
    if torch.utils.data.get_worker_info() is not None:
        return 1
    return max(1, min(AUTO_THREADS, _cpus()))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def fill_images(
    robot: RobotDataset,
    d: int,
    batch: BatchArrays,
    rows: np.ndarray,
    at: slice | np.ndarray,
    episodes: list[int],
    starts: list[int],
) -> np.ndarray:
    """Image slots and masks of batch rows `rows` (`at`: the same rows as a slice when
    consecutive) := the frames at `starts` of `episodes` of dataset `d`; returns the frames dropped
    per row (bad_images="mask")."""
    config, ds = robot.config, robot.datasets[d]
    frames, outs, where = [], [], []  # one job per decoded frame, in (slot, row) order
    blanks = []  # slots with no camera: zeroed by the caller while the pool decodes
    for slot, feature in robot.slots[d].items():
        images, masks = batch.images[slot], batch.image_masks[slot]
        if feature is None:
            blanks.append(images)
            continue  # masks start False
        masks[at] = True  # a frame that cannot be decoded turns its row off below
        tables = {e: robot.frame_table(d, e, feature) for e in set(episodes)}
        for i, (b, e, s) in enumerate(zip(rows.tolist(), episodes, starts, strict=True)):
            offsets, data = tables[e]
            frames.append(data[offsets[s] : offsets[s + 1]])
            outs.append(images[b])
            where.append((slot, feature, i, b))
    dropped = np.zeros(len(rows), np.int64)
    threads = decode_threads(config.decode_threads)
    failures = _decode(frames, outs, config.image_decode == "draft", threads, lambda: _blank(blanks, at))
    for j, error in failures:
        slot, feature, i, b = where[j]
        if config.bad_images != "mask":
            from .robot import stored_image_error

            raise stored_image_error(ds, episodes[i], starts[i], feature, error) from error
        batch.images[slot][b], batch.image_masks[slot][b] = 0, False
        dropped[i] += 1
    return dropped


def _blank(slots: list[np.ndarray], at: slice | np.ndarray) -> None:
    """Zero rows `at` of the image slots `slots` (no camera): always written, since a reused batch
    buffer may hold whatever the caller wrote into that batch before letting it go. Reading first
    and writing only rows that are not zero measured no better (+-5 us per sample of ~215 for the
    image stage, either way) and not writing at all is not sound."""
    for images in slots:
        images[at] = 0


def _decode(
    frames: list, outs: list, draft: bool, threads: int, meanwhile: Callable[[], None] = lambda: None
) -> list[tuple[int, Exception]]:
    """`decode_into(frames[j], outs[j])` for every j on up to `threads` threads, and `meanwhile()`
    on the caller's thread first; the failures, (j, error) in order of j."""
    jobs = _Jobs(frames, outs, draft)
    threads = min(threads, len(frames))
    if threads > 1:
        pool = _pool(threads)
        for _ in range(threads - 1):
            pool.submit(jobs.run)
    try:
        meanwhile()
        jobs.work()
    finally:
        jobs.close()  # never return (or raise) while a thread still writes into the batch
    return sorted(jobs.failures, key=lambda failure: failure[0])


class _Jobs:
    """The frames of one batch, each claimed by whichever thread is free next: a thread the
    machine does not run for a while (other processes on the cores) holds up one frame at most,
    not a fixed share of the batch. Once the caller has run out of frames it closes the batch: a
    pool thread that starts later leaves it alone, and the caller waits only for threads still
    decoding a frame they claimed."""

    def __init__(self, frames: list, outs: list, draft: bool):
        self.frames, self.outs, self.draft = frames, outs, draft
        self.claim = itertools.count().__next__  # one number per call, atomic under the GIL
        self.failures: list[tuple[int, Exception]] = []
        self.state = threading.Condition()
        self.closed, self.busy = False, 0

    def run(self) -> None:
        """A pool thread's part."""
        with self.state:
            if self.closed:
                return
            self.busy += 1
        try:
            self.work()
        finally:
            with self.state:
                self.busy -= 1
                self.state.notify_all()

    def work(self) -> None:
        n = len(self.frames)
        while (j := self.claim()) < n:
            try:
                decode_into(self.frames[j], self.outs[j], draft=self.draft)
            except Exception as error:  # PIL raises several types for corrupt data
                self.failures.append((j, error))

    def close(self) -> None:
        with self.state:
            self.closed = True
            while self.busy:
                self.state.wait()


def _pool(threads: int) -> ThreadPoolExecutor:
    """This process's pool of `threads - 1` decode threads (the caller decodes a share too)."""
    pid = os.getpid()
    pool = _pools.get((pid, threads))
    if pool is None:
        for key in [key for key in _pools if key[0] != pid]:  # a parent's, forked: no threads here
            del _pools[key]
        pool = _pools[pid, threads] = ThreadPoolExecutor(threads - 1, thread_name_prefix="vla-data-decode")
    return pool
