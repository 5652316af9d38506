"""Web vision-language data (captioning, VQA, conversations, detection) as people have it.

    WebSource("llava_instruct_150k.json", image_root="coco/")        # LLaVA / ShareGPT conversations
    WebSource("the_cauldron/vqav2/")                                 # HF parquet or save_to_disk
    WebSource("laion_shards/")                                       # img2dataset WebDataset tars
    WebSource("annotations/instances_val2017.json", format="coco")   # COCO boxes
    WebSource("refcoco.jsonl", format="refcoco")                     # a phrase + one box per record

Formats: `llava` (JSON array or JSON Lines of {id, image, conversations}), `hf` (parquet files or a
`save_to_disk` folder, in the LLaVA-OneVision schema (`image` + `conversations`), the_cauldron
schema (`images` + `texts`) or plain rows), `wds`, `coco`, `refcoco`, `jsonl` (plain rows:
image + question + answer). `auto` picks the format from the files when that is unambiguous.

Reading streams: refs are groups of `group_size` samples found by one pass over the metadata
(or the file), and each group is read by seeking to it, so memory is one group whatever the size
of the dataset. With `on_error="skip"` a bad sample is left out of its group and listed (source
file + sample id + reason) in the manifest's `skipped`; its group is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Literal

from vla_data.episode import Episode
from vla_data.errors import SourceError

from . import web_records as records
from .web_coco import coco_sample, records_coco, scan_coco
from .web_json import first_record, json_container
from .web_sample import KINDS, group_episode
from .web_schemas import WebFields, cauldron, llava, plain, refcoco
from .web_wds import records_tar, scan_tars, wds_sample

WebFormat = Literal["auto", "llava", "hf", "wds", "coco", "refcoco", "jsonl"]
FORMATS = ("llava", "hf", "wds", "coco", "refcoco", "jsonl")
DEFAULT_GROUP = 256


@dataclass(frozen=True)
class WebSource:
    path: str
    format: WebFormat = "auto"
    fields: dict[str, str] = field(default_factory=dict)  # WebFields overrides, e.g. {"answer": "caption"}
    kind: str | None = None  # kind of every plain row (default vqa); chat for conversations
    image_root: str | None = None  # image paths are relative to this (default: next to SRC)
    split: str = "train"  # split of a saved DatasetDict
    bbox_format: Literal["xywh", "xyxy"] = "xywh"  # RefCOCO boxes
    group_size: int = DEFAULT_GROUP
    on_error: Literal["fail", "skip"] = "fail"  # set from the conversion options
    # earlier names of common fields (kept for scripts written against them)
    image_field: str | None = None
    prompt_field: str | None = "question"
    answer_field: str | None = None
    kind_field: str | None = None

    def __post_init__(self) -> None:
        if self.format not in ("auto", *FORMATS):
            raise ValueError(f"web format must be one of {('auto', *FORMATS)}, got {self.format!r}")
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.bbox_format not in ("xywh", "xyxy"):
            raise ValueError(f"bbox_format must be xywh or xyxy, got {self.bbox_format!r}")
        if self.group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {self.group_size}")
        if not Path(self.path).exists():
            raise SourceError("no such file or folder", file=self.path)
        legacy = {"image": self.image_field, "answer": self.answer_field, "kind": self.kind_field}
        overrides = {k: v for k, v in legacy.items() if v is not None}
        overrides["question"] = self.prompt_field or ""
        WebFields.parse({**overrides, **self.fields})  # fail early on unknown names
        object.__setattr__(self, "fields", {**overrides, **self.fields})
        if self.format == "auto":
            object.__setattr__(self, "format", detect_format(Path(self.path), self.names))

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "plan"}  # workers work out their own plan

    @property
    def names(self) -> WebFields:
        return WebFields.parse(self.fields)

    def configure(self, options) -> WebSource:
        """Adopt the conversion's `on_error`; web images are stored as they are (the loader resizes
        them together with their boxes), so `--image-size` is refused."""
        if options.image_size:
            raise ValueError(
                "convert web stores images unchanged (boxes refer to them); drop --image-size: the "
                "loader resizes each image and its boxes to the model size"
            )
        return replace(self, on_error=options.on_error)

    def describe(self) -> dict[str, Any]:
        options = {k: v for k, v in vars(self).items() if k not in ("path", "on_error", "plan")}
        return {"format": "web", "path": self.path, "options": options}

    # -- files and schema --------------------------------------------------------------------------
    def _files(self, suffixes: tuple[str, ...]) -> list[Path]:
        path = Path(self.path)
        if path.is_file():
            return [path]
        files = sorted(p for p in path.rglob("*") if p.suffix in suffixes and p.is_file())
        if not files:
            raise SourceError(f"no {'/'.join(suffixes)} files", file=self.path)
        return files

    def _root(self) -> Path:
        if self.image_root:
            return Path(self.image_root)
        path = Path(self.path)
        return path if path.is_dir() else path.parent

    def _hf_files(self) -> tuple[str, list[Path]]:
        path = Path(self.path)
        if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
            return "arrow", records.saved_dataset_files(path, self.split)
        return "parquet", self._files((".parquet",))

    def _hf_mapper(self, columns: list[str]):
        f = self.names
        if f.conversations in columns:
            return partial(llava, f=f, root=self._root(), kind=self.kind or "chat")
        if f.texts in columns and f.images in columns:
            return partial(cauldron, f=f, root=self._root(), kind=self.kind or "chat")
        if f.answer in columns:
            return partial(plain, f=f, root=self._root(), kind=self.kind or "vqa")
        raise SourceError(
            f"columns {columns} match no known schema: LLaVA-OneVision ({f.conversations!r}), the_cauldron "
            f"({f.images!r} + {f.texts!r}) or plain rows ({f.answer!r}); name yours with --field",
            file=self.path,
        )

    @cached_property
    def plan(self):
        """(scan, records, mapper) for this source's format (worked out once per process)."""
        f, root, size = self.names, self._root(), self.group_size
        if self.format == "hf":
            container, files = self._hf_files()
            if container == "arrow":
                import pyarrow as pa

                with pa.memory_map(str(files[0])) as source:
                    columns = pa.ipc.open_stream(source).schema.names
                return (
                    partial(records.scan_arrow, files, size),
                    records.records_arrow,
                    self._hf_mapper(columns),
                )
            import pyarrow.parquet as pq

            columns = pq.read_schema(files[0]).names
            return (
                partial(records.scan_parquet, files, size),
                records.records_parquet,
                self._hf_mapper(columns),
            )
        if self.format == "wds":
            files = self._files((".tar",))
            return partial(scan_tars, files, size), records_tar, partial(wds_sample, f=f)
        if self.format == "coco":
            return (
                partial(scan_coco, Path(self.path), size),
                records_coco,
                partial(coco_sample, root=self._coco_root()),
            )
        files = self._files((".json", ".jsonl"))
        mapper = {
            "llava": partial(llava, f=f, root=root, kind=self.kind or "chat"),
            "refcoco": partial(refcoco, f=f, root=root, bbox_format=self.bbox_format),
            "jsonl": partial(plain, f=f, root=root, kind=self.kind or "vqa"),
        }[self.format]
        if all(json_container(str(p)) == "array" for p in files):
            return partial(records.scan_array, files, size), records.records_array, mapper
        if any(json_container(str(p)) == "array" for p in files):
            raise SourceError(
                "mixes JSON arrays and JSON Lines files; convert them separately", file=self.path
            )
        return partial(records.scan_lines, files, size), records.records_lines, mapper

    def _coco_root(self) -> Path:
        """COCO keeps annotations/instances_train2017.json next to train2017/."""
        if self.image_root:
            return Path(self.image_root)
        path = Path(self.path)
        split = path.stem.split("_")[-1]
        for candidate in (path.parent.parent / split, path.parent / split):
            if candidate.is_dir():
                return candidate
        return path.parent

    # -- Source protocol ---------------------------------------------------------------------------
    def episode_refs(self) -> list[dict[str, Any]]:
        scan, _, _ = self.plan
        refs = [{**ref, "episode": number} for number, ref in enumerate(scan())]
        if not refs:
            raise SourceError("no samples found", file=self.path)
        return refs

    def read(self, ref: dict[str, Any]) -> Episode:
        _, read_records, mapper = self.plan
        id_field = self.names.id
        samples, skipped = [], []
        for default_id, record in read_records(ref):
            sample_id = default_id
            if isinstance(record, dict):
                found = next(
                    (record[k] for k in (id_field, "ref_id") if record.get(k) not in (None, "")), None
                )
                sample_id = default_id if found is None else str(found)
            try:
                if isinstance(record, Exception):
                    raise ValueError(getattr(record, "reason", str(record)))
                if not isinstance(record, dict):
                    raise ValueError(f"record is {type(record).__name__}, expected an object")
                samples.extend(sample.check() for sample in mapper(record, sample_id))
            except (ValueError, KeyError, TypeError, AttributeError, SourceError) as e:
                reason = getattr(e, "reason", None) or (
                    str(e) if type(e) is ValueError else f"malformed record ({type(e).__name__}: {e})"
                )
                if self.on_error == "fail":
                    raise SourceError(
                        f"sample {sample_id}: {reason} (--on-error skip leaves out bad samples)",
                        file=ref["file"],
                    ) from e
                skipped.append({"source_ref": {"file": ref["file"], "sample": sample_id}, "reason": reason})
        return group_episode(samples, {"file": ref["file"], "episode": ref["episode"]}, skipped)


def detect_format(path: Path, names: WebFields | None = None) -> str:
    """The web format of `path` when the files say it unambiguously (record fields read with
    `names`); otherwise a clear error."""
    names = names or WebFields()

    def fail(why: str) -> SourceError:
        return SourceError(f"{why}; pass --format one of {', '.join(FORMATS)}", file=str(path))

    if path.is_dir():
        if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
            return "hf"
        suffixes = {p.suffix for p in path.rglob("*") if p.is_file()}
        found = [s for s in (".parquet", ".tar", ".json", ".jsonl") if s in suffixes]
        if found in ([".parquet"], [".tar"]):
            return {".parquet": "hf", ".tar": "wds"}[found[0]]
        if not found:
            raise fail("no .parquet, .tar, .json or .jsonl files")
        if found not in ([".json"], [".jsonl"], [".json", ".jsonl"]):
            raise fail(f"holds several kinds of files ({found})")
        path = next(p for p in sorted(path.rglob("*")) if p.suffix in (".json", ".jsonl"))
    if path.suffix == ".parquet":
        return "hf"
    if path.suffix == ".tar":
        return "wds"
    if path.suffix not in (".json", ".jsonl"):
        raise fail(f"unknown file type {path.suffix!r}")
    if json_container(str(path)) == "object":
        with open(path, "rb") as f:
            head = f.read(1 << 16).decode("utf-8", errors="replace")
        if '"images"' in head or '"annotations"' in head or '"info"' in head:
            return "coco"
        raise fail("a single JSON object that does not look like a COCO instances file")
    record = first_record(str(path))
    if not isinstance(record, dict):
        raise fail("the first record is not a JSON object")
    if names.conversations in record:
        return "llava"
    phrases = (names.phrase, "sentence", "phrase", "expression", "ref_id")
    if names.bbox in record and any(k in record for k in phrases):
        return "refcoco"
    if names.answer in record or "answer" in record:  # a missing named field is then a per-row error
        return "jsonl"
    hint = " (captions: --format jsonl --field answer=caption --kind caption)" if "caption" in record else ""
    raise fail(f"cannot tell the layout from its fields {sorted(record)[:8]}{hint}")
