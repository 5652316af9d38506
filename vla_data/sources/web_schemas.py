"""Record -> `WebSample` for the layouts people have: plain image/question/answer rows, LLaVA /
ShareGPT / LLaVA-OneVision conversations, the_cauldron `images` + `texts`, RefCOCO-style
referring expressions. Field names are configurable (`WebFields`) for the many variants.

    >>> llava({"id": "1", "image": "a.jpg", "conversations": [
    ...     {"from": "human", "value": "<image>\\nWhat is it?"}, {"from": "gpt", "value": "A cat."}]},
    ...     "1", WebFields(), root)
    [WebSample(id='1', kind='chat', turns=[('user', 'What is it?'), ('assistant', 'A cat.')], ...)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .web_sample import KINDS, ROLE_ALIASES, WebSample, with_images

IMAGE_MARK = re.compile(r"[ \t]*<image>[ \t]*\n?")


@dataclass(frozen=True)
class WebFields:
    """Field names of a source's records (`--field NAME=FIELD` on the command line)."""

    id: str = "id"
    image: str = "image"  # one image, or a list of them (LLaVA), or {bytes, path} (HF)
    images: str = "images"  # the_cauldron: a list of images
    conversations: str = "conversations"  # LLaVA/ShareGPT: [{from, value}, ...]
    role: str = "from"
    text: str = "value"
    texts: str = "texts"  # the_cauldron: [{user, assistant}, ...]
    question: str = "question"  # plain rows; "" (or a missing field) means no prompt
    answer: str = "answer"
    kind: str = ""  # plain rows: a field holding caption|vqa|detection|chat per sample
    caption: str = "caption"  # WebDataset .json / plain captions
    bbox: str = "bbox"  # RefCOCO: [x, y, w, h] pixels (or x0, y0, x1, y1 with bbox_format="xyxy")
    phrase: str = "sentences"  # RefCOCO: a string, a list of strings, or [{"sent": ...}, ...]
    file_name: str = "file_name"  # RefCOCO/COCO: image path when there is no image field

    @classmethod
    def parse(cls, overrides: dict[str, str]) -> WebFields:
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(overrides) - known):
            raise ValueError(f"unknown web field name(s) {unknown}; known: {sorted(known)}")
        return cls(**overrides)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} is {type(value).__name__}, expected text")
    return value


def _image_values(value: Any) -> list[Any]:
    if value is None or value == "" or value == []:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def plain(record: dict, sample_id: str, f: WebFields, root: Path | None, kind: str) -> list[WebSample]:
    """An image + question + answer row (captions leave the question empty)."""
    if f.kind:
        kind = record.get(f.kind)
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} (field {f.kind!r}) is not one of {KINDS}")
    question = record.get(f.question) if f.question else None
    answer = record.get(f.answer)
    if answer is None:
        raise ValueError(f"no answer (field {f.answer!r}); the row has fields {sorted(record)}")
    turns = [("user", _text(question or "", f.question)), ("assistant", _text(answer, f.answer))]
    return [with_images(WebSample(sample_id, kind, turns), _image_values(record.get(f.image)), root)]


def llava(
    record: dict, sample_id: str, f: WebFields, root: Path | None, kind: str = "chat"
) -> list[WebSample]:
    """LLaVA / ShareGPT / LLaVA-OneVision: `conversations` of {from, value}; `<image>` marks are
    removed from the text and must match the number of images when present."""
    conversation = record.get(f.conversations)
    if not isinstance(conversation, list):
        raise ValueError(
            f"field {f.conversations!r} is {type(conversation).__name__}, expected a list of turns"
        )
    turns = []
    marks = 0
    for i, turn in enumerate(conversation):
        role = ROLE_ALIASES.get(str(turn.get(f.role, "")).lower())
        if role is None:
            raise ValueError(f"turn {i}: role {turn.get(f.role)!r} is not one of {sorted(ROLE_ALIASES)}")
        text = _text(turn.get(f.text), f"turn {i} {f.text!r}")
        marks += text.count("<image>")
        turns.append((role, IMAGE_MARK.sub("", text).strip() if "<image>" in text else text))
    images = _image_values(record.get(f.image))
    if not images and f.images in record:
        images = _image_values(record.get(f.images))
    if marks and marks != len(images):
        raise ValueError(f"{marks} <image> marks but {len(images)} images")
    return [with_images(WebSample(sample_id, kind, turns), images, root)]


def cauldron(
    record: dict, sample_id: str, f: WebFields, root: Path | None, kind: str = "chat"
) -> list[WebSample]:
    """the_cauldron: `images` (a list) and `texts` = [{user, assistant}, ...]."""
    texts = record.get(f.texts)
    if not isinstance(texts, list) or not texts:
        raise ValueError(f"field {f.texts!r} holds no [{{user, assistant}}] turns")
    turns = []
    for i, pair in enumerate(texts):
        turns.append(("user", _text(pair.get("user"), f"texts[{i}].user")))
        turns.append(("assistant", _text(pair.get("assistant"), f"texts[{i}].assistant")))
    return [with_images(WebSample(sample_id, kind, turns), _image_values(record.get(f.images)), root)]


def _phrases(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, dict):
            v = v.get("sent", v.get("raw"))
        if isinstance(v, str) and v.strip():
            out.append(v.strip())
    return out


def xyxy(bbox: Any, bbox_format: str) -> tuple[float, float, float, float]:
    """A box as (x_min, y_min, x_max, y_max) pixels from COCO's [x, y, w, h] or from [x0, y0, x1, y1]."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise ValueError(f"bbox {bbox!r} is not 4 numbers")
    x, y, a, b = (float(v) for v in bbox)
    return (x, y, x + a, y + b) if bbox_format == "xywh" else (x, y, a, b)


def refcoco(
    record: dict, sample_id: str, f: WebFields, root: Path | None, bbox_format: str = "xywh"
) -> list[WebSample]:
    """A referring expression (or several) and its one box: one detection sample per phrase."""
    phrases = _phrases(record.get(f.phrase))
    if not phrases:
        raise ValueError(f"no referring phrase (field {f.phrase!r})")
    box = xyxy(record.get(f.bbox), bbox_format)
    image = record.get(f.image)
    if image is None:
        image = record.get(f.file_name)
    base = with_images(WebSample(sample_id, "detection"), _image_values(image), root)
    if len(base.images) != 1:
        raise ValueError(
            f"expected one image (field {f.image!r} or {f.file_name!r}), found {len(base.images)}"
        )
    return [
        WebSample(
            id=sample_id if len(phrases) == 1 else f"{sample_id}#{k}",
            kind="detection",
            images=base.images,
            image_sizes=base.image_sizes,
            boxes=[box],
            box_labels=[phrase],
            box_image=[0],
        )
        for k, phrase in enumerate(phrases)
    ]
