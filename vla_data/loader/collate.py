"""Samples -> one batch of torch tensors (the batch contract of DESIGN section 7)."""

from __future__ import annotations

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
        tokens = np.full((B, L), self.pad_id, np.int64)
        token_mask, ar, loss, fast = (np.zeros((B, L), bool) for _ in range(4))
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
            tokens[b, :n], token_mask[b, :n] = t.tokens[:n], True
            ar[b, :n], loss[b, :n], fast[b, :n] = t.ar[:n], t.loss[:n], t.fast[:n]
        slots = samples[0]["images"].keys()
        batch = {
            "images": {s: torch.from_numpy(np.stack([x["images"][s] for x in samples])) for s in slots},
            "image_masks": {s: torch.tensor([x["image_masks"][s] for x in samples]) for s in slots},
            "tokens": torch.from_numpy(tokens),
            "token_mask": torch.from_numpy(token_mask),
            "token_ar_mask": torch.from_numpy(ar),
            "token_loss_mask": torch.from_numpy(loss),
            "fast_token_mask": torch.from_numpy(fast),
            "state": torch.from_numpy(np.stack([x["state"] for x in samples])),
            "actions": torch.from_numpy(np.stack([x["actions"] for x in samples])),
            "action_is_pad": torch.from_numpy(np.stack([x["action_is_pad"] for x in samples])),
            "action_dim_mask": torch.from_numpy(np.stack([x["action_dim_mask"] for x in samples])),
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
