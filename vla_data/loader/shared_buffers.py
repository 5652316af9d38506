"""Shared-memory batch buffers of DataLoader workers, used again once the main process has let go.

A fresh shared-memory segment per batch costs its page faults on first write: 5-8 ms for a
15 MB batch (batch 32, three 224x224 slots), more than a third of decoding its frames. So each
worker keeps `slots` segments. A segment is busy from the moment its worker hands it out until
every tensor of that batch in the main process is gone: `release_when_freed` (run by the loader
on each batch it yields) puts a finalizer on the batch's storage that clears the segment's flag
in a small table shared by all processes. The worker reuses only segments whose flag is clear, so
a batch the caller still holds is never overwritten; with no free segment it takes a fresh one.

Invariant: a worker writes only into its own segments, and into slot s only while flags[w, s] is
0 or was set by a process that has exited. flags[w, s] holds the token of the one batch last
handed out from that slot; only that batch's finalizer clears it (compare-and-clear on the token),
so a batch, or any view / slice / `.numpy()` array of any of its tensors (all share one storage,
whose Python object lives exactly as long as the memory), is never overwritten while held.
`owners[w, s]` is the pid that set the flag: a batch that was handed out but never yielded (the
prefetched batches of an epoch left early) gets no finalizer, and without this its slot would stay
busy forever; the next iterator's workers (new processes) take over slots whose owner has exited
(a dead process never writes again; a held old batch keeps its token, which no longer matches).
Tests: tests/test_loader_segments.py (real workers, every kind of kept piece).

Known limits (reuse stops, data stays right): with persistent workers, batches torch drains
unseen at the next epoch after a `break`, and batches of `loader.dataloader` iterated directly,
are never released, so their slots stay busy for the workers' lifetime (fresh segments then).
Two iterators of the SAME loader at once start workers with the same ids on one table; a slot
is claimed without a lock, so simultaneous claims could collide: iterate one loader at a time
(separate loaders have separate tables).

"Let go" is judged in the main process only: a batch sent on to another process (a multiprocessing
queue) must be copied there first (`clone()`), or iterate `loader.dataloader` directly, which never
reuses a segment.

Each pooled segment starts with a header (magic, worker, slot, token); the batch's tensors follow
it, so the header is invisible to the caller. The token tells one use of a slot from the next (a
finalizer of an old batch never frees a slot a newer batch is using).
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import numpy as np
import torch

HEADER = 64  # bytes before the batch tensors in a pooled segment
MAGIC = 0x76_6C_61_62_75_66  # "vlabuf"


class WorkerBuffers:
    def __init__(self, workers: int, slots: int = 4):
        self.flags = torch.zeros((workers, slots), dtype=torch.int64).share_memory_()  # 0: free
        self.owners = torch.zeros((workers, slots), dtype=torch.int64).share_memory_()  # pid that set it
        self._segments: dict[int, torch.UntypedStorage] = {}  # this worker's, by slot

    def __getstate__(self) -> dict[str, Any]:
        return {"flags": self.flags, "owners": self.owners, "_segments": {}}

    def get(self, nbytes: int) -> torch.Tensor:
        """A uint8 tensor of `nbytes` in shared memory, for one batch of this worker."""
        worker = torch.utils.data.get_worker_info().id
        flags, owners, pid = self.flags[worker].numpy(), self.owners[worker].numpy(), os.getpid()
        for slot in range(len(flags)):
            if flags[slot] and (owners[slot] == pid or _alive(int(owners[slot]))):
                continue
            segment = self._segments.get(slot)
            if segment is None or segment.nbytes() != HEADER + nbytes:
                segment = self._segments[slot] = _shared(HEADER + nbytes)
            token = int.from_bytes(os.urandom(8), "little") >> 2 | 1
            flags[slot], owners[slot] = token, pid
            base = _bytes(segment)
            base[:32].view(torch.int64).copy_(torch.tensor([MAGIC, worker, slot, token]))
            return base[HEADER:]
        segment = _shared(HEADER + nbytes)  # every slot busy: a one-off segment, never reused
        base = _bytes(segment)
        base[:8].view(torch.int64).fill_(0)
        return base[HEADER:]


def release_when_freed(batch: dict[str, Any], buffers: WorkerBuffers) -> None:
    """Main process: free the batch's segment for its worker once no tensor of the batch is left."""
    storage = batch["tokens"].untyped_storage()
    if storage.nbytes() < HEADER:
        return
    magic, worker, slot, token = _bytes(storage)[:32].view(torch.int64).tolist()
    if magic == MAGIC:
        weakref.finalize(storage, _clear, buffers.flags.numpy(), worker, slot, token)


def _clear(flags: np.ndarray, worker: int, slot: int, token: int) -> None:
    if flags[worker, slot] == token:  # the worker reuses a slot only once it is 0
        flags[worker, slot] = 0


def _alive(pid: int) -> bool:
    """Process `pid` may still write into its segments (a reaped worker cannot)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _shared(nbytes: int) -> torch.UntypedStorage:
    return torch.UntypedStorage._new_shared(nbytes)


def _bytes(storage: torch.UntypedStorage) -> torch.Tensor:
    return torch.empty(0, dtype=torch.uint8).set_(storage)
