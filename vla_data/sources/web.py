"""Web vision-language samples (caption / VQA / detection): image + prompt + answer.

Reads a Hugging Face `datasets` dataset saved with `save_to_disk`, or parquet / jsonl files whose
image field holds bytes, `{bytes, path}`, or a path relative to `image_root`. Samples are grouped
into "episodes" of `group_size` rows only to keep the shard index small; they have no order.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vla_data.episode import Episode
from vla_data.errors import SourceError
from vla_data.images import image_format_of

WEB_IMAGE = "image"
KINDS = ("caption", "vqa", "detection")
DEFAULT_CAPTION_PROMPT = "caption en"
Kind = Literal["caption", "vqa", "detection"]


@dataclass(frozen=True)
class WebSource:
    path: str
    image_field: str = "image"
    prompt_field: str | None = "question"
    answer_field: str = "answer"
    kind_field: str | None = None
    kind: Kind = "vqa"
    default_prompt: str = DEFAULT_CAPTION_PROMPT  # when the prompt field is absent or empty
    image_root: str | None = None
    split: str = "train"
    group_size: int = 1000

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def describe(self) -> dict[str, Any]:
        options = {k: v for k, v in vars(self).items() if k != "path"}
        return {"format": "web", "path": self.path, "options": options}

    def _rows(self) -> list[dict[str, Any]]:
        path = Path(self.path)
        if not path.exists():
            raise SourceError("no such file or folder", file=self.path)
        if path.is_dir() and (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            import datasets

            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if self.split not in loaded:
                    raise SourceError(
                        f"no split {self.split!r}; the dataset has {list(loaded)}", file=self.path
                    )
                loaded = loaded[self.split]
            return (
                loaded.cast_column(self.image_field, datasets.Image(decode=False)).to_list()
                if self.image_field in loaded.column_names
                else loaded.to_list()
            )
        files = sorted(path.glob("*.parquet")) + sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        rows: list[dict[str, Any]] = []
        for file in files:
            if file.suffix == ".parquet":
                import pyarrow.parquet as pq

                rows += pq.read_table(file).to_pylist()
            elif file.suffix in (".jsonl", ".json"):
                for number, line in enumerate(file.read_text().splitlines(), 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as e:
                            raise SourceError(f"line {number} is not JSON ({e})", file=str(file)) from e
            else:
                raise SourceError("expected a saved `datasets` folder, .parquet or .jsonl", file=str(file))
        return rows

    def episode_refs(self) -> list[dict[str, Any]]:
        count = len(self._rows())
        if count == 0:
            raise SourceError("no samples found", file=self.path)
        return [
            {"file": self.path, "episode": start, "stop": min(start + self.group_size, count)}
            for start in range(0, count, self.group_size)
        ]

    def read(self, ref: dict[str, Any]) -> Episode:
        rows = self._rows()[ref["episode"] : ref["stop"]]
        images, prompts, answers, kinds = [], [], [], []
        for offset, row in enumerate(rows):
            number = ref["episode"] + offset
            for field in (self.image_field, self.answer_field):
                if row.get(field) is None:
                    raise SourceError(
                        f"sample {number} has no {field!r}", file=self.path, episode=ref["episode"], key=field
                    )
            kind = row.get(self.kind_field) if self.kind_field else self.kind
            if kind not in KINDS:
                raise SourceError(
                    f"sample {number}: kind {kind!r} is not one of {KINDS}",
                    file=self.path,
                    key=self.kind_field,
                )
            prompt = row.get(self.prompt_field) if self.prompt_field else None
            images.append(self._image_bytes(row[self.image_field], number))
            prompts.append(str(prompt) if prompt else self.default_prompt)
            answers.append(str(row[self.answer_field]))
            kinds.append(kind)
        episode = Episode(
            index=0,
            task="",
            fps=1.0,
            arrays={
                "prompt": np.array(prompts, dtype=object),
                "answer": np.array(answers, dtype=object),
                "kind": np.array(kinds, dtype=object),
            },
            images={WEB_IMAGE: images},
            source_ref={"file": self.path, "episode": ref["episode"]},
        )
        episode.validate(require_action=False)
        return episode

    def _image_bytes(self, value: Any, number: int) -> bytes:
        if isinstance(value, dict):
            data = value.get("bytes")
            value = data if data is not None else value.get("path")
        if isinstance(value, str):
            path = Path(self.image_root or Path(self.path).parent) / value
            if not path.exists():
                raise SourceError(
                    f"sample {number}: image file {path} is missing", file=self.path, key=self.image_field
                )
            value = path.read_bytes()
        if hasattr(value, "save"):  # a PIL image
            buffer = io.BytesIO()
            value.convert("RGB").save(buffer, format="PNG")
            value = buffer.getvalue()
        if not isinstance(value, (bytes, bytearray)):
            raise SourceError(
                f"sample {number}: unsupported image value {type(value).__name__}",
                file=self.path,
                key=self.image_field,
            )
        try:
            image_format_of(bytes(value))
            return bytes(value)
        except ValueError:  # WebP, GIF, ...: re-encode once as PNG
            from vla_data.images import decode_image, encode_image

            try:
                return encode_image(decode_image(bytes(value)), "png")
            except Exception as e:
                raise SourceError(
                    f"sample {number}: image bytes cannot be decoded ({e})",
                    file=self.path,
                    key=self.image_field,
                ) from e
