"""Samples -> one batch of torch tensors (the batch contract of DESIGN section 7).

Two ways in, one writer: `Collate(samples)` collates per-sample dicts, and `Collate.assemble`
(the loader's `__getitems__`) builds a whole batch at once, each source writing its rows straight
into the batch buffer (`BatchArrays`): robot sources vectorised, others through their samples."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vla_data.errors import VlaDataError

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
        source_of = np.fromiter((k[0] for k in keys), np.int64, len(keys))
        index = np.fromiter((k[1] for k in keys), np.int64, len(keys))
        batch.arrays["source"][:] = source_of
        timer.mark("collate")
        for s in np.unique(source_of).tolist():
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
        B, L, H, D = size, collate.max_tokens, shape.horizon, shape.action_dim
        self.collate, self.shape, self.size = collate, shape, size
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
        if collate.truncate:
            specs["truncated"] = ((B,), torch.bool)
        if collate.count_dropped_images:
            specs["images_dropped"] = ((B,), torch.int64)
        self.tensors, base, images_end = _allocate(specs, len(shape.slots))
        base[images_end:].fill(0)  # everything after the frames: masks False, numbers 0
        self.arrays = {k: v.numpy() for k, v in self.tensors.items()}
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

    def put_tokens(
        self, b: int, tokens: np.ndarray, bounds: tuple[int, int, int, int], where: Callable[[], str]
    ) -> None:
        """Row `b`'s token layout from ids `[n]` and (prefix end, loss start, FAST start, FAST end):
        AR and loss masks run from their start to the end, the FAST mask over its span."""
        n = self._length(b, len(tokens), where)
        prefix, loss, fast_start, fast_end = bounds
        a = self.arrays
        a["tokens"][b, :n] = tokens[:n]
        a["token_mask"][b, :n] = True
        a["token_ar_mask"][b, prefix:n] = True
        a["token_loss_mask"][b, loss:n] = True
        a["fast_token_mask"][b, fast_start : min(fast_end, n)] = True

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
            "images": {s: out.pop(f"images/{s}").permute(0, 3, 1, 2) for s in self.shape.slots},
            "image_masks": {s: out.pop(f"image_masks/{s}") for s in self.shape.slots},
        }
        batch.update(out)
        return batch


def _allocate(
    specs: dict[str, tuple[tuple[int, ...], torch.dtype]], images: int
) -> tuple[dict[str, torch.Tensor], np.ndarray, int]:
    """Uninitialised tensors for a whole batch, carved out of ONE buffer; also the buffer as a
    numpy array and where the first `images` tensors (the frames) end in it.

    In a DataLoader worker the buffer is shared memory: handing the batch to the main process then
    copies nothing and passes one file descriptor instead of one per tensor (~7x cheaper for the
    ~16 tensors of a batch). In the main process numpy allocates it (it asks for huge pages: fewer
    page faults than `torch.empty` when a fresh batch is first written). A tensor kept alone keeps
    the whole batch's buffer alive."""
    sizes = {
        k: math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
        for k, (shape, dtype) in specs.items()
    }
    starts, total = {}, 0
    for k, size in sizes.items():
        starts[k], total = total, total + -(-size // ALIGN) * ALIGN
    if torch.utils.data.get_worker_info() is None:
        base = torch.from_numpy(np.empty(total, np.uint8))
    else:
        template = torch.empty(0, dtype=torch.uint8)
        base = template.new(template._typed_storage()._new_shared(total, device=template.device))
    keys = list(specs)
    images_end = starts[keys[images]] if images < len(keys) else total
    tensors = {
        k: base[starts[k] : starts[k] + sizes[k]].view(dtype).view(shape)
        for k, (shape, dtype) in specs.items()
    }
    return tensors, base.numpy(), images_end
