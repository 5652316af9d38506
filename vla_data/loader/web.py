"""Web vision-language samples: one image in the base slot, prompt prefix, answer postfix."""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_data.errors import VlaDataError
from vla_data.tokenizers.prompt import PromptBuilder

from .robot import load_stored_image, open_dataset

WEB_IMAGE_FEATURE = "observation.images.image"


class WebDataset:
    def __init__(self, roots: tuple[str, ...], config, prompt: PromptBuilder):
        self.config = config
        self.prompt = prompt
        self.datasets = [open_dataset(root, config) for root in roots]
        for ds in self.datasets:
            missing = [f for f in ("prompt", "answer", WEB_IMAGE_FEATURE) if f not in ds.features]
            if missing:
                raise VlaDataError(
                    f"{ds.root}: not a web dataset (missing {missing}); convert it with `vla-data convert web`"
                )
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        d = int(np.searchsorted(self.offsets, index, side="right") - 1)
        ds = self.datasets[d]
        episode, row = ds.locate(int(index - self.offsets[d]))
        table = ds.rows(episode, row, row + 1)
        h, w = self.config.image_size
        D, H = self.config.action_dim, self.config.horizon
        slots = self.config.image_slots
        images = {slot: np.zeros((3, h, w), np.uint8) for slot in slots}
        images[slots[0]], ok = load_stored_image(
            ds, episode, row, WEB_IMAGE_FEATURE, table.column(WEB_IMAGE_FEATURE)[0].as_py(), self.config
        )
        return {
            "images": images,
            "image_masks": {slot: ok and slot == slots[0] for slot in slots},
            "images_dropped": int(not ok),
            "tokens": self.prompt.web(table.column("prompt")[0].as_py(), table.column("answer")[0].as_py()),
            "state": np.zeros(D, np.float32),
            "actions": np.zeros((H, D), np.float32),
            "action_is_pad": np.ones(H, bool),
            "action_dim_mask": np.zeros(D, bool),
            "has_actions": False,
            "where": f"{ds.root} sample {int(index - self.offsets[d])}",
        }
