"""Web samples for the loader: images fill the model's image slots in order, turns become the
multi-turn token layout of `vla_data.tokenizers.web_text`, boxes become `<loc>` tokens of the
resized (padded or cropped) image the model sees."""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_data.errors import VlaDataError
from vla_data.images import decode_for_size, resize_geometry
from vla_data.sources.web_sample import WEB_FEATURES, read_web_sample
from vla_data.tokenizers.prompt import PromptBuilder
from vla_data.tokenizers.web_text import WebTextBuilder, detection_text, transform_box

from .robot import open_dataset


class WebDataset:
    def __init__(self, roots: tuple[str, ...], config, prompt: PromptBuilder):
        self.config = config
        self.text = WebTextBuilder(prompt.text, dict(config.web_templates))
        self.datasets = [open_dataset(root, config) for root in roots]
        for ds in self.datasets:
            missing = [f for f in WEB_FEATURES if f not in ds.features]
            if missing:
                raise VlaDataError(
                    f"{ds.root}: not a web dataset of this version (missing {missing}); convert it with "
                    "`vla-data convert web`"
                )
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        d = int(np.searchsorted(self.offsets, index, side="right") - 1)
        ds, local = self.datasets[d], int(index - self.offsets[d])
        sample = read_web_sample(ds, local)
        where = f"{ds.root} sample {local} (id {sample.id})"
        h, w = self.config.image_size
        slots = self.config.image_slots
        extra = max(0, len(sample.images) - len(slots))
        if extra and self.config.web_extra_images == "fail":
            raise VlaDataError(
                f"{where}: {len(sample.images)} images but the model has {len(slots)} image slots {list(slots)}; "
                "set web_extra_images='drop' to keep the first ones and count the rest"
            )
        images = {slot: np.zeros((3, h, w), np.uint8) for slot in slots}
        masks = {slot: False for slot in slots}
        geometries: list[tuple[int, int, int, int] | None] = []
        bad = 0
        for slot, data, (source_h, source_w) in zip(slots, sample.images, sample.image_sizes, strict=False):
            frame = self._load(data, where)
            if frame is None:
                bad += 1
                geometries.append(None)
            else:
                images[slot], masks[slot] = frame, True
                geometries.append(resize_geometry(source_h, source_w, h, w, self.config.web_resize_mode))
        boxes, labels, dropped = [], [], 0
        for box, label, image in zip(sample.boxes, sample.box_labels, sample.box_image, strict=True):
            moved = None
            if image < len(geometries) and geometries[image] is not None:
                moved = transform_box(box, sample.image_sizes[image], geometries[image], (h, w))
            if moved is None:
                dropped += 1
            else:
                boxes.append(moved)
                labels.append(label)
        answer = detection_text(boxes, labels, (h, w)) if sample.kind == "detection" else None
        turns = self.text.render(sample.kind, sample.turns, sample.box_labels, answer)
        D, H = self.config.action_dim, self.config.horizon
        return {
            "images": images,
            "image_masks": masks,
            "images_dropped": bad,
            "extra_images_dropped": extra,
            "boxes_dropped": dropped,
            "tokens": self.text.layout(turns),
            "state": np.zeros(D, np.float32),
            "actions": np.zeros((H, D), np.float32),
            "action_is_pad": np.ones(H, bool),
            "action_dim_mask": np.zeros(D, bool),
            "has_actions": False,
            "where": where,
        }

    def _load(self, data: bytes, where: str) -> np.ndarray | None:
        """[3, h, w] model image, resized (pad or crop) like the robot frames (`image_decode`);
        None for an undecodable image with bad_images="mask" (an error otherwise)."""
        h, w = self.config.image_size
        try:
            frame = decode_for_size(
                data, h, w, self.config.web_resize_mode, draft=self.config.image_decode == "draft"
            )
        except Exception as e:  # PIL raises several types for corrupt data
            if self.config.bad_images == "mask":
                return None
            raise VlaDataError(f"{where}: image cannot be decoded ({e})") from e
        return np.ascontiguousarray(frame.transpose(2, 0, 1))
