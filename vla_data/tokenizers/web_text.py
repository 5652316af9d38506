"""Text of web samples at load time: PaliGemma prompt templates, `<loc>` tokens and the multi-turn
token layout. (The robot prompt lives in `prompt.py`.)

Layout, following big_vision's PaliGemma `combine_and_keep_train` (configs/proj/paligemma/
transfers/common.py: BOS + prefix, then the separator "\\n", both ar 0 / loss 0, then suffix + EOS
with ar 1 / loss 1), extended to several turns:

    prefix  (ar 0, loss 0):  BOS  [system "\\n"]  user_1 "\\n"
    postfix (ar 1):          assistant_1 EOS      loss 1
                             user_2 "\\n"          loss 0
                             assistant_2 EOS      loss 1   ...

Images come before the prefix (the model's image tokens); each text piece is tokenized on its own
and concatenated, as big_vision does. The first user turn goes through the template of the
sample's kind — PaliGemma's by default: `caption en`, `answer en {question}`, `detect {labels}`;
conversations (`chat`) verbatim.

Boxes: PaliGemma writes a box as `<locY1><locX1><locY2><locX2> label`, objects joined by " ; ",
each coordinate relative to the image the model sees and binned as in big_vision
(pp/proj/paligemma/segmentation.py `refcoco_mask2str`: `round(bbox * 1023)` clipped to 0..1023,
bbox = [y_min, x_min, y_max, x_max] / image size; decoded as `token / 1023` in
evaluators/proj/paligemma/transfers/segmentation.py). Boxes go through the same resize-with-pad
or crop as their image (`vla_data.images.resize_geometry`) before binning; a box cropped away
entirely is dropped (and counted by the loader).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

from vla_data.errors import VlaDataError
from vla_data.tokenizers.prompt import SampleTokens
from vla_data.tokenizers.text import TextTokenizer

LOC_BINS = 1024
DEFAULT_TEMPLATES = {
    "caption": "caption en",
    "vqa": "answer en {question}",
    "detection": "detect {labels}",
    "chat": "{question}",
}
TEMPLATE_FIELDS = {"question", "labels"}


def loc_index(value: float, size: float) -> int:
    """big_vision's binning of one coordinate: `round(value / size * 1023)`, clipped to 0..1023
    (numpy rounds half to even, like `tf.round`)."""
    return int(np.clip(np.round(value / size * (LOC_BINS - 1)), 0, LOC_BINS - 1))


def loc_tokens(box: tuple[float, float, float, float], height: int, width: int) -> str:
    """`<locY1><locX1><locY2><locX2>` of an (x_min, y_min, x_max, y_max) pixel box in a
    `height x width` image."""
    x0, y0, x1, y1 = box
    bins = (loc_index(y0, height), loc_index(x0, width), loc_index(y1, height), loc_index(x1, width))
    return "".join(f"<loc{b:04d}>" for b in bins)


def transform_box(
    box: tuple[float, float, float, float],
    source_size: tuple[int, int],
    geometry: tuple[int, int, int, int],
    target_size: tuple[int, int],
) -> tuple[float, float, float, float] | None:
    """A pixel box of a `source_size` (h, w) image, moved like its image by a resize to
    `target_size` whose `geometry` is `resize_geometry(...)` = (new_h, new_w, top, left); clipped
    to the target; None when nothing of it is left (cropped away)."""
    (h, w), (new_h, new_w, top, left), (height, width) = source_size, geometry, target_size
    sx, sy = new_w / w, new_h / h
    x0, y0, x1, y1 = box
    x0, x1 = np.clip([x0 * sx + left, x1 * sx + left], 0, width)
    y0, y1 = np.clip([y0 * sy + top, y1 * sy + top], 0, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return float(x0), float(y0), float(x1), float(y1)


def detection_text(
    boxes: list[tuple[float, float, float, float]], labels: list[str], size: tuple[int, int]
) -> str:
    """PaliGemma's detection answer: `<loc..>x4 label ; <loc..>x4 label`."""
    return " ; ".join(f"{loc_tokens(b, *size)} {label}" for b, label in zip(boxes, labels, strict=True))


def unique_labels(labels: list[str]) -> str:
    """The `{labels}` of a detection prompt: each label once, in order of appearance, joined by " ; "."""
    return " ; ".join(dict.fromkeys(labels))


@dataclass(frozen=True)
class WebTextBuilder:
    """Builds the token layout of a web sample (see the module docstring)."""

    text: TextTokenizer
    templates: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TEMPLATES))
    separator: str = "\n"

    def __post_init__(self) -> None:
        templates = {**DEFAULT_TEMPLATES, **self.templates}
        for kind, template in templates.items():
            if kind not in DEFAULT_TEMPLATES:
                raise VlaDataError(
                    f"web prompt template for unknown kind {kind!r}; kinds: {sorted(DEFAULT_TEMPLATES)}"
                )
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
            if unknown := names - TEMPLATE_FIELDS:
                raise VlaDataError(
                    f"web prompt template {template!r} ({kind}) uses {sorted(unknown)}; it may use "
                    f"{{question}} and {{labels}}"
                )
        object.__setattr__(self, "templates", templates)

    def render(
        self, kind: str, turns: list[tuple[str, str]], labels: list[str], answer: str | None
    ) -> list[tuple[str, str]]:
        """The turns as the model reads them: the first user turn through the kind's template;
        detection samples get their answer (`answer`, the rendered boxes) as the assistant turn."""
        values = {"labels": unique_labels(labels)}
        out, templated = [], False
        for role, text in turns:
            if role == "user" and not templated:
                text, templated = self.templates[kind].format(question=text, **values), True
            out.append((role, text))
        if not templated:
            out.append(("user", self.templates[kind].format(question="", **values)))
        if answer is not None:
            out.append(("assistant", answer))
        return out

    def layout(self, turns: list[tuple[str, str]]) -> SampleTokens:
        """Tokens, ar and loss masks of rendered turns (system turns before the first user turn
        join the prefix)."""
        encode, sep = self.text.encode, self.text.encode(self.separator)
        prefix = [self.text.bos_id]
        position = 0
        while position < len(turns) and turns[position][0] == "system":
            prefix += encode(turns[position][1]) + sep
            position += 1
        if position == len(turns) or turns[position][0] != "user":
            raise VlaDataError(f"a web sample must start with a user turn, got {[r for r, _ in turns]}")
        prefix += encode(turns[position][1]) + sep
        tokens, loss = list(prefix), [False] * len(prefix)
        for role, text in turns[position + 1 :]:
            piece = encode(text) + ([self.text.eos_id] if role == "assistant" else sep)
            tokens += piece
            loss += [role == "assistant"] * len(piece)
        ar = np.arange(len(tokens)) >= len(prefix)
        return SampleTokens(
            np.asarray(tokens, np.int64), ar, np.asarray(loss, bool), np.zeros(len(tokens), bool)
        )
