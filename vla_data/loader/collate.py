"""Samples -> one batch of torch tensors (the batch contract of DESIGN section 7)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vla_data.errors import VlaDataError


@dataclass(frozen=True)
class Collate:
    max_tokens: int
    pad_id: int
    truncate: bool = False
    count_dropped_images: bool = False

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        B, L = len(samples), self.max_tokens
        tokens = _empty((B, L), torch.int64)
        tokens.fill_(self.pad_id)
        token_mask, ar, loss, fast = (_empty((B, L), torch.bool).fill_(False) for _ in range(4))
        out = [t.numpy() for t in (tokens, token_mask, ar, loss, fast)]
        truncated = np.zeros(B, bool)
        for b, sample in enumerate(samples):
            t = sample["tokens"]
            n = len(t.tokens)
            if n > L:
                if not self.truncate:
                    raise VlaDataError(
                        f"{sample['where']}: {n} tokens exceed max_tokens={L}; raise max_tokens or set truncate=True"
                    )
                truncated[b], n = True, L
            out[0][b, :n], out[1][b, :n] = t.tokens[:n], True
            out[2][b, :n], out[3][b, :n], out[4][b, :n] = t.ar[:n], t.loss[:n], t.fast[:n]
        slots = samples[0]["images"].keys()
        batch = {
            "images": {s: _stack_images([x["images"][s] for x in samples]) for s in slots},
            "image_masks": {s: torch.tensor([x["image_masks"][s] for x in samples]) for s in slots},
            "tokens": tokens,
            "token_mask": token_mask,
            "token_ar_mask": ar,
            "token_loss_mask": loss,
            "fast_token_mask": fast,
            "state": _stack([x["state"] for x in samples], torch.float32),
            "actions": _stack([x["actions"] for x in samples], torch.float32),
            "action_is_pad": _stack([x["action_is_pad"] for x in samples], torch.bool),
            "action_dim_mask": _stack([x["action_dim_mask"] for x in samples], torch.bool),
            "has_actions": torch.tensor([x["has_actions"] for x in samples]),
            "source": torch.tensor([x["source"] for x in samples], dtype=torch.int64),
            # web samples: images beyond the model's slots (web_extra_images="drop") and boxes
            # cropped away by the resize; 0 for robot samples
            "extra_images_dropped": torch.tensor([x.get("extra_images_dropped", 0) for x in samples]),
            "boxes_dropped": torch.tensor([x.get("boxes_dropped", 0) for x in samples]),
        }
        if self.truncate:
            batch["truncated"] = torch.from_numpy(truncated)
        if self.count_dropped_images:
            batch["images_dropped"] = torch.tensor([x["images_dropped"] for x in samples], dtype=torch.int64)
        return batch


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor. In a DataLoader worker it is allocated in shared memory, so handing
    the batch to the main process copies nothing (what torch's default collate does); in the main
    process numpy allocates it (numpy asks for huge pages for large arrays: ~3x fewer page faults
    than `torch.empty` when a fresh batch is first written)."""
    if torch.utils.data.get_worker_info() is None:
        return torch.from_numpy(np.empty(shape, torch.empty(0, dtype=dtype).numpy().dtype))
    template = torch.empty(0, dtype=dtype)
    storage = template._typed_storage()._new_shared(math.prod(shape), device=template.device)
    return template.new(storage).resize_(shape)


def _stack_images(frames: list[np.ndarray]) -> torch.Tensor:
    """Frames `[3, h, w]` -> `[B, 3, h, w]` uint8 in channels-last memory (`[B, h, w, 3]` in RAM).

    Frames decode as `[h, w, 3]` (samples hold channels-first views of them), so filling a
    channels-last batch is one plain copy per frame; NCHW memory would need a transposing copy that
    costs about a third of a 224x224 JPEG decode. Models take either layout (`.contiguous()` gives
    NCHW memory)."""
    c, h, w = frames[0].shape
    out = _empty((len(frames), h, w, c), torch.uint8)
    np.stack([f.transpose(1, 2, 0) for f in frames], out=out.numpy())
    return out.permute(0, 3, 1, 2)


def _stack(arrays: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
    """Stack per-sample arrays into one tensor `[B, ...]` with a single copy."""
    out = _empty((len(arrays), *arrays[0].shape), dtype)
    np.stack(arrays, out=out.numpy())
    return out
