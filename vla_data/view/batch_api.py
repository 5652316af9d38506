"""Loader batches exactly as the model gets them, through the public loader API.

Batch n of the stream is epoch n // len(loader), batch n % len(loader): the loader is moved there
with `load_state_dict` and yields it. Batches are a pure function of (seed, epoch, batch) for any
`num_workers`, so the viewer builds them in-process (`num_workers=0`) and gets the same tensors a
training run does.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from vla_data.errors import VlaDataError
from vla_data.loader import LoaderConfig, ki_attention_mask, make_loader

from .dataset_api import NotFound, floats

BATCH_CACHE = 4
# Keys of the batch contract (DESIGN section 7); any other per-sample tensor of a batch is a counter
# (truncated, images_dropped, boxes_dropped, ...) shown with its sample.
CONTRACT_KEYS = {
    "images",
    "image_masks",
    "tokens",
    "token_mask",
    "token_ar_mask",
    "token_loss_mask",
    "fast_token_mask",
    "state",
    "actions",
    "action_is_pad",
    "action_dim_mask",
    "has_actions",
    "source",
}
# Colours of the attention-mask image, by the query's role (RGB).
MASK_COLOURS = {
    "prefix": (59, 110, 200),
    "postfix": (230, 140, 40),
    "fast": (200, 50, 50),
    "expert": (50, 160, 80),
    "padding": (190, 190, 190),
    "blocked": (255, 255, 255),
}


def png(pixels: np.ndarray) -> bytes:
    """uint8 `[h, w, 3]` -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


class TokenPieces:
    """The text of each token id: byte ids as characters, special ids by name, FAST ids as F<id>."""

    def __init__(self, prompt):
        self.prompt = prompt
        text = prompt.text
        self.special = {text.bos_id: "<bos>", text.eos_id: "<eos>", text.pad_id: "<pad>"}
        inner = getattr(text, "_tokenizer", None)
        if inner is not None and hasattr(inner, "decode"):
            self._decode = lambda i: inner.decode([i], skip_special_tokens=False)
        else:  # the built-in byte tokenizer: ids 0..255 are UTF-8 bytes
            self._decode = lambda i: chr(i) if 32 <= i < 127 or i == 10 else f"\\x{i:02x}"

    def fast_id(self, token: int) -> int:
        p = self.prompt
        return p.text.vocab_size - 1 - p.skip - token if p.mapping == "tail" else token - p.text.vocab_size

    def __call__(self, token: int, is_fast: bool) -> str:
        if is_fast:
            return f"F{self.fast_id(token)}"
        if token in self.special:
            return self.special[token]
        return self._decode(token)


class BatchView:
    """Batches of one loader config, with their images, token texts, masks and sources."""

    def __init__(self, config: LoaderConfig, dataset_ids: dict[str, int]):
        # Same batches for any num_workers (DESIGN section 8); in-process keeps the viewer light.
        self.config = replace(config, num_workers=0, persistent_workers=False, pin_memory=False)
        self.loader = make_loader(self.config)
        self.dataset_ids = dataset_ids
        self.pieces = TokenPieces(self.loader.prompt)
        self._cache: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def batches_per_epoch(self) -> int:
        return len(self.loader)

    def batch(self, n: int) -> dict[str, Any]:
        """Batch n of the stream (tensors), plus the (source, sample) key of each sample."""
        if n < 0:
            raise NotFound(f"no batch {n}: batches are numbered from 0")
        with self._lock:
            if n in self._cache:
                self._cache.move_to_end(n)
                return self._cache[n]
            epoch, index = divmod(n, self.batches_per_epoch)
            self.loader.load_state_dict({**self.loader.state_dict(), "epoch": epoch, "batch": index})
            tensors = next(iter(self.loader))
            keys = self.loader.plan.batch(epoch, index, self.config.rank)
            if [s for s, _ in keys] != tensors["source"].tolist():
                raise VlaDataError(f"batch {n}: the mixture plan and the batch disagree on sample sources")
            item = {"tensors": tensors, "keys": keys, "mask": ki_attention_mask(tensors)[0]}
            self._cache[n] = item
            while len(self._cache) > BATCH_CACHE:
                self._cache.popitem(last=False)
            return item

    def sample_source(self, source: int, index: int) -> dict[str, Any]:
        """Where a sample comes from: dataset path and episode/step (robot) or sample (web)."""
        spec = self.config.sources[source]
        dataset = self.loader.sources[source]
        d = int(np.searchsorted(dataset.offsets, index, side="right") - 1)
        episode, step = dataset.datasets[d].locate(int(index - dataset.offsets[d]))
        path = spec.paths[d]
        out = {
            "index": source,
            "kind": spec.kind,
            "weight": spec.weight,
            "path": path,
            "dataset": self.dataset_ids.get(path),
        }
        if spec.kind == "robot":
            return {**out, "episode": episode, "step": step}
        return {**out, "sample": int(index - dataset.offsets[d])}

    def batch_json(self, n: int) -> dict[str, Any]:
        item = self.batch(n)
        t = item["tensors"]
        B, L = t["tokens"].shape
        H = t["actions"].shape[1]
        slots = list(t["images"])
        samples = []
        for b in range(B):
            real = t["token_mask"][b].numpy()
            ids = t["tokens"][b].numpy()[real]
            ar, loss, fast = (
                t[k][b].numpy()[real] for k in ("token_ar_mask", "token_loss_mask", "fast_token_mask")
            )
            pieces = [self.pieces(int(i), bool(f)) for i, f in zip(ids, fast, strict=True)]
            dims = t["action_dim_mask"][b].numpy()
            samples.append(
                {
                    "b": b,
                    "source": self.sample_source(*item["keys"][b]),
                    "has_actions": bool(t["has_actions"][b]),
                    "images": [
                        {
                            "slot": s,
                            "mask": bool(t["image_masks"][s][b]),
                            "url": f"api/batch/{n}/image/{b}/{s}.png",
                        }
                        for s in slots
                    ],
                    "tokens": {
                        "ids": ids.tolist(),
                        "pieces": pieces,
                        "ar": ar.astype(int).tolist(),
                        "loss": loss.astype(int).tolist(),
                        "fast": fast.astype(int).tolist(),
                    },
                    "text": {
                        "prefix": "".join(p for p, a in zip(pieces, ar, strict=True) if not a),
                        "postfix": "".join(p for p, a in zip(pieces, ar, strict=True) if a),
                    },
                    "counters": {
                        key: value[b].item()
                        for key, value in t.items()
                        if key not in CONTRACT_KEYS
                        and isinstance(value, torch.Tensor)
                        and value.shape == (B,)
                    },
                    "mask": {"url": f"api/batch/{n}/mask/{b}.png", "L": L, "H": H},
                    "actions": {
                        "values": floats(t["actions"][b].numpy()[:, dims]),
                        "is_pad": t["action_is_pad"][b].numpy().astype(int).tolist(),
                        "dims": int(dims.sum()),
                    },
                    "state": floats(t["state"][b].numpy()[dims]),
                }
            )
        epoch, index = divmod(n, self.batches_per_epoch)
        return {
            "n": n,
            "epoch": epoch,
            "index": index,
            "batches_per_epoch": self.batches_per_epoch,
            "batch_size": B,
            "max_tokens": L,
            "horizon": H,
            "image_size": list(self.config.image_size),
            "slots": slots,
            "mask_colours": {k: "rgb({},{},{})".format(*v) for k, v in MASK_COLOURS.items()},
            "samples": samples,
        }

    def image_png(self, n: int, b: int, slot: str) -> bytes:
        images = self.batch(n)["tensors"]["images"]
        if slot not in images or not 0 <= b < len(images[slot]):
            raise NotFound(
                f"batch {n} has samples 0..{len(next(iter(images.values()))) - 1} and slots {list(images)}"
            )
        return png(images[slot][b].numpy().transpose(1, 2, 0))

    def mask_png(self, n: int, b: int) -> bytes:
        item = self.batch(n)
        if not 0 <= b < len(item["mask"]):
            raise NotFound(f"batch {n} has samples 0..{len(item['mask']) - 1}")
        return png(mask_pixels(item["tensors"], item["mask"], b))


def query_roles(tensors: dict[str, torch.Tensor], b: int, horizon: int) -> list[str]:
    """Role of each of the L + H positions of sample b: prefix, postfix, fast, expert or padding."""
    real = tensors["token_mask"][b]
    roles = [
        "padding"
        if not real[i]
        else "fast"
        if tensors["fast_token_mask"][b, i]
        else "postfix"
        if tensors["token_ar_mask"][b, i]
        else "prefix"
        for i in range(len(real))
    ]
    return roles + ["expert" if tensors["has_actions"][b] else "padding"] * horizon


def mask_pixels(tensors: dict[str, torch.Tensor], mask: torch.Tensor, b: int) -> np.ndarray:
    """The attention mask of sample b as an image `[L+H, L+H, 3]`: a visible key is drawn in the
    colour of its query's role, a blocked one white."""
    roles = query_roles(tensors, b, mask.shape[1] - tensors["tokens"].shape[1])
    colours = np.array([MASK_COLOURS[r] for r in roles], np.uint8)  # [L+H, 3]
    allowed = mask[b].numpy()[:, :, None]  # [L+H, L+H, 1]
    return np.where(allowed, colours[:, None, :], np.array(MASK_COLOURS["blocked"], np.uint8))
