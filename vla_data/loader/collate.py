"""Samples -> one batch of torch tensors (the batch contract of DESIGN section 7).

Two ways in, one writer: `Collate(samples)` collates per-sample dicts, and `Collate.assemble`
(the loader's `__getitems__`) builds a whole batch at once, each source writing its rows straight
into the batch buffer (`BatchArrays`): robot sources vectorised, others through their samples."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import torch

from vla_data.errors import VlaDataError
from vla_data.tokenizers.prompt import RobotTokens

from .shared_buffers import WorkerBuffers
from .stage_timer import NO_TIMER, StageTimer, _NoTimer

TOKEN_MASKS = ("token_mask", "token_ar_mask", "token_loss_mask", "fast_token_mask")
COUNTS = ("source", "extra_images_dropped", "boxes_dropped")
ALIGN = 64


@dataclass(frozen=True)
class BatchShape:
    """What a batch's tensor shapes follow: the model's image slots and size, horizon, action dim."""

    slots: tuple[str, ...]
    image_size: tuple[int, int]  # (h, w)
    horizon: int
    action_dim: int


@dataclass(frozen=True)
class Collate:
    max_tokens: int
    pad_id: int
    truncate: bool = False
    count_dropped_images: bool = False
    shape: BatchShape | None = None  # needed by `assemble`; `__call__` reads shapes off the samples
    buffers: WorkerBuffers | None = field(default=None, compare=False)  # workers' reused segments

    def __call__(self, samples: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
        if isinstance(samples, dict):  # a batch `assemble` already built (MixtureDataset.__getitems__)
            return samples
        first = samples[0]
        shape = BatchShape(
            tuple(first["images"]),
            next(iter(first["images"].values())).shape[1:] if first["images"] else (0, 0),
            len(first["action_is_pad"]),
            len(first["state"]),
        )
        batch = BatchArrays(self, shape, len(samples))
        for b, sample in enumerate(samples):
            batch.put_sample(b, sample)
            batch.arrays["source"][b] = sample["source"]
        return batch.finish()

    def assemble(
        self, sources: Sequence[Any], keys: Sequence[tuple[int, int]], timer: StageTimer | _NoTimer = NO_TIMER
    ) -> dict[str, Any]:
        """The batch of (source, sample) `keys`, built at once: a source with `fill_batch(batch,
        rows, indices, timer)` writes all its rows in one call, any other one sample at a time.
        Equal field by field to collating `sources[s][i]` for each key (tests/test_loader_batch.py)."""
        if self.shape is None:
            raise VlaDataError("Collate.assemble needs the batch shape (Collate(..., shape=BatchShape(...)))")
        batch = BatchArrays(self, self.shape, len(keys))
        source_of, index = np.fromiter(chain.from_iterable(keys), np.int64, 2 * len(keys)).reshape(-1, 2).T
        batch.arrays["source"][:] = source_of
        timer.mark("collate")
        for s in sorted({s for s, _ in keys}):
            rows = np.flatnonzero(source_of == s)
            fill = getattr(sources[s], "fill_batch", None)
            if fill is not None:
                fill(batch, rows, index[rows], timer)
                continue
            for b, i in zip(rows.tolist(), index[rows].tolist(), strict=True):
                batch.put_sample(b, sources[s][i])
        out = batch.finish()
        timer.mark("collate")
        return out


class BatchArrays:
    """One batch's tensors, carved out of one buffer, with numpy views to fill them by row.

    Starts as an empty batch: tokens all padding, every mask False, numbers zero (image slots are
    left for the filler: each row of a slot must be written, a frame or `blank`)."""

    def __init__(self, collate: Collate, shape: BatchShape, size: int):
        self.collate, self.shape, self.size = collate, shape, size
        layout = _layout(shape, size, collate.max_tokens, collate.truncate, collate.count_dropped_images)
        self.tensors, self.arrays, base = _allocate(layout, collate.buffers)
        base[layout.images_end :].fill(0)  # everything after the frames: masks False, numbers 0
        self.arrays["tokens"].fill(collate.pad_id)
        self.images = {s: self.arrays[f"images/{s}"] for s in shape.slots}  # [B, h, w, 3] each
        self.image_masks = {s: self.arrays[f"image_masks/{s}"] for s in shape.slots}

    def _length(self, b: int, n: int, where: Callable[[], str]) -> int:
        """Tokens of row `b` kept: past `max_tokens` an error naming `where()`, or (truncate) cut
        and counted in `truncated`."""
        L = self.collate.max_tokens
        if n <= L:
            return n
        if not self.collate.truncate:
            raise VlaDataError(
                f"{where()}: {n} tokens exceed max_tokens={L}; raise max_tokens or set truncate=True"
            )
        self.arrays["truncated"][b] = True
        return L

    def put_token_rows(self, rows: np.ndarray, layout: RobotTokens, where: Callable[[int], str]) -> None:
        """Rows `rows` of the token tensors from n layouts (`PromptBuilder.robot_batch`): the ids as
        one block, the masks compared against each row's bounds at once; a layout past
        `max_tokens` is an error naming `where(i)`, or (truncate) cut and counted in `truncated`."""
        L, lengths, bounds = self.collate.max_tokens, layout.lengths, layout.bounds
        over = lengths > L
        if over.any():
            if not self.collate.truncate:
                i = int(np.argmax(over))
                raise VlaDataError(
                    f"{where(i)}: {lengths[i]} tokens exceed max_tokens={L}; raise max_tokens or set truncate=True"
                )
            self.arrays["truncated"][rows[over]] = True
        column = np.arange(L)
        kept = column < lengths[:, None]  # [n, L]
        width = min(layout.ids.shape[1], L)
        a, at = self.arrays, row_index(rows)
        a["tokens"][at, :width] = np.where(kept[:, :width], layout.ids[:, :width], self.collate.pad_id)
        a["token_mask"][at] = kept
        a["token_ar_mask"][at] = kept & (column >= bounds[:, 0, None])
        a["token_loss_mask"][at] = kept & (column >= bounds[:, 1, None])
        a["fast_token_mask"][at] = (column >= bounds[:, 2, None]) & (column < bounds[:, 3, None]) & kept

    def put_sample(self, b: int, sample: dict[str, Any]) -> None:
        """Row `b` from one sample dict (`RobotDataset.sample`, `WebDataset[i]`); actions shorter
        than the batch horizon are padded (zeros, `action_is_pad` True)."""
        t = sample["tokens"]
        n = self._length(b, len(t.tokens), lambda: sample["where"])
        a = self.arrays
        a["tokens"][b, :n], a["token_mask"][b, :n] = t.tokens[:n], True
        a["token_ar_mask"][b, :n], a["token_loss_mask"][b, :n] = t.ar[:n], t.loss[:n]
        a["fast_token_mask"][b, :n] = t.fast[:n]
        for s in self.shape.slots:
            self.image_masks[s][b] = mask = sample["image_masks"][s]
            if mask:  # frames decode as [h, w, 3]; samples hold [3, h, w] views of them
                self.images[s][b] = sample["images"][s].transpose(1, 2, 0)
            else:  # masked slots hold blank frames
                self.images[s][b] = 0
        horizon = len(sample["action_is_pad"])
        a["state"][b] = sample["state"]
        a["actions"][b, :horizon] = sample["actions"]
        a["action_is_pad"][b, :horizon] = sample["action_is_pad"]
        a["action_is_pad"][b, horizon:] = True
        a["action_dim_mask"][b] = sample["action_dim_mask"]
        a["has_actions"][b] = sample["has_actions"]
        # web samples: images beyond the model's slots (web_extra_images="drop") and boxes cropped
        # away by the resize; 0 for robot samples
        a["extra_images_dropped"][b] = sample.get("extra_images_dropped", 0)
        a["boxes_dropped"][b] = sample.get("boxes_dropped", 0)
        if self.collate.count_dropped_images:
            a["images_dropped"][b] = sample["images_dropped"]

    def finish(self) -> dict[str, Any]:
        out = dict(self.tensors)
        batch: dict[str, Any] = {
            # [B, 3, h, w] in channels-last memory: decoded into, or filled by one plain copy per
            # frame, where NCHW memory needs a transposing copy (about a third of a 224x224 decode)
            "images": {s: out.pop(f"images/{s}") for s in self.shape.slots},
            "image_masks": {s: out.pop(f"image_masks/{s}") for s in self.shape.slots},
        }
        batch.update(out)
        return batch


def row_index(rows: np.ndarray) -> slice | np.ndarray:
    """Batch rows as a slice when consecutive (a robot-only batch: all of them), where numpy
    copies whole blocks instead of gathering row by row."""
    first, last = int(rows[0]), int(rows[-1])
    return slice(first, last + 1) if last - first + 1 == len(rows) else rows


class BufferPool:
    """Batch buffers of one process, handed out again once nothing references them.

    A fresh batch buffer costs page faults on first write (with huge pages, a zeroed 2 MB page
    each): about 10% of decoding 224x224 frames into it. A training loop holds one or two
    batches at a time, so the buffer of an earlier batch is free again by the time the next one
    is built. Free means no tensor, view or array of that batch is left (the buffer's reference
    count), so a batch kept by the caller is never overwritten. At most `size` buffers are kept."""

    def __init__(self, size: int = 4):
        self.size = size
        self._buffers: list[np.ndarray] = []

    def get(self, nbytes: int) -> np.ndarray:
        free = [i for i in range(len(self._buffers)) if self._free(i)]
        for i in free:
            if self._buffers[i].nbytes == nbytes:
                return self._buffers[i]
        buffer = np.empty(nbytes, np.uint8)
        if len(self._buffers) < self.size:
            self._buffers.append(buffer)
        elif free:  # replace a free buffer of another size (the batch shape changed)
            self._buffers[free[0]] = buffer
        return buffer

    def _free(self, i: int) -> bool:
        """No batch uses buffer `i`: its references are the pool's and getrefcount's argument (a
        batch's storage holds one more for as long as any tensor or view of the batch lives)."""
        return sys.getrefcount(self._buffers[i]) == 2


MAIN_PROCESS_BUFFERS = BufferPool()


@dataclass(frozen=True)
class TensorSpot:
    """One tensor of a batch in its buffer: the torch view's shape and strides (in elements; the
    image slots `[B, 3, h, w]` channels-last), the numpy view's shape (`[B, h, w, 3]` for images)."""

    key: str
    offset: int  # bytes from the buffer's start
    dtype: torch.dtype
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    array_shape: tuple[int, ...]


@dataclass(frozen=True)
class BatchLayout:
    """Where each tensor of a batch lives in its one buffer (the frames first), the buffer's size,
    where the frames end."""

    tensors: tuple[TensorSpot, ...]
    total: int
    images_end: int
    dtypes: frozenset[torch.dtype]


@functools.lru_cache(maxsize=16)
def _layout(
    shape: BatchShape, size: int, max_tokens: int, truncate: bool, count_dropped: bool
) -> BatchLayout:
    B, L, H, D = size, max_tokens, shape.horizon, shape.action_dim
    specs: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
        **{f"images/{s}": ((B, *shape.image_size, 3), torch.uint8) for s in shape.slots},
        **{f"image_masks/{s}": ((B,), torch.bool) for s in shape.slots},
        "tokens": ((B, L), torch.int64),
        **{k: ((B, L), torch.bool) for k in TOKEN_MASKS},
        "state": ((B, D), torch.float32),
        "actions": ((B, H, D), torch.float32),
        "action_is_pad": ((B, H), torch.bool),
        "action_dim_mask": ((B, D), torch.bool),
        "has_actions": ((B,), torch.bool),
        **{k: ((B,), torch.int64) for k in COUNTS},
    }
    if truncate:
        specs["truncated"] = ((B,), torch.bool)
    if count_dropped:
        specs["images_dropped"] = ((B,), torch.int64)
    tensors, total, images_end = [], 0, None
    for i, (key, (dims, dtype)) in enumerate(specs.items()):
        if i == len(shape.slots):
            images_end = total
        strides = tuple(math.prod(dims[j + 1 :]) for j in range(len(dims)))
        if key.startswith("images/"):  # [B, h, w, 3] memory seen as [B, 3, h, w]
            tensors.append(TensorSpot(key, total, dtype, _nchw(dims), _nchw(strides), dims))
        else:
            tensors.append(TensorSpot(key, total, dtype, dims, strides, dims))
        total += -(-math.prod(dims) * dtype.itemsize // ALIGN) * ALIGN
    images_end = total if images_end is None else images_end
    return BatchLayout(tuple(tensors), total, images_end, frozenset(dtype for _, dtype in specs.values()))


def _nchw(nhwc: tuple[int, ...]) -> tuple[int, ...]:
    return nhwc[0], nhwc[3], nhwc[1], nhwc[2]


def _allocate(
    layout: BatchLayout, buffers: WorkerBuffers | None
) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray], np.ndarray]:
    """Uninitialised tensors for a whole batch, carved out of ONE buffer, the same memory as numpy
    arrays, and the buffer as a numpy array.

    In a DataLoader worker the buffer is shared memory: handing the batch to the main process then
    copies nothing and passes one file descriptor instead of one per tensor (~7x cheaper for the
    ~16 tensors of a batch); with `buffers`, a segment reused once the main process is done with it. In the main process it comes from `BufferPool`: the buffer of a
    batch nothing references any more, whose pages are already mapped (glibc hands large blocks
    back to the system: past 32 MB, e.g. batch 96 of three 224x224 slots, every fresh batch
    would fault its pages in again). A tensor kept alone keeps the whole batch's buffer alive (and
    out of the pool).

    One torch call per tensor (`as_strided` on the buffer seen as its dtype) and one numpy view
    each: a batch is built every few milliseconds, and each torch call costs microseconds."""
    if torch.utils.data.get_worker_info() is None:
        base = torch.from_numpy(MAIN_PROCESS_BUFFERS.get(layout.total))
    elif buffers is not None:  # a segment of this worker's the main process let go of (shared_buffers)
        base = buffers.get(layout.total)
    else:
        template = torch.empty(0, dtype=torch.uint8)
        base = template.new(template._typed_storage()._new_shared(layout.total, device=template.device))
    start = base.storage_offset()  # bytes; a multiple of ALIGN, as every tensor's offset
    as_type = {dtype: base.view(dtype) for dtype in layout.dtypes if dtype != torch.uint8}
    as_type[torch.uint8] = base
    numpy_base = base.numpy()
    tensors, arrays = {}, {}
    for spot in layout.tensors:
        at = (start + spot.offset) // spot.dtype.itemsize
        tensors[spot.key] = as_type[spot.dtype].as_strided(spot.shape, spot.strides, at)
        arrays[spot.key] = np.ndarray(spot.array_shape, NUMPY[spot.dtype], numpy_base, spot.offset)
    return tensors, arrays, numpy_base


NUMPY = {torch.uint8: np.uint8, torch.bool: np.bool_, torch.int64: np.int64, torch.float32: np.float32}
