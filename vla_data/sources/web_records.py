"""Record readers of the containers web data comes in: JSON Lines, a JSON array, parquet files
and `datasets.save_to_disk` folders (Arrow stream files). Each has two functions:

    scan(files, group_size)  -> refs: {"file", "start", "count", ...}, each at most `group_size`
                                samples, found from metadata or one streaming pass
    records(ref)             -> (default id, record) for the samples of one ref, read by seeking
                                to it: no group ever re-reads what comes before it

so a conversion reads every byte about twice at most (scan + read) and holds one group at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from vla_data.errors import SourceError

from .web_json import iter_json_array, iter_json_lines

Ref = dict[str, Any]


# -- JSON Lines --------------------------------------------------------------------------------
def _grouped(file: Path, key: str, starts: Iterator[tuple[int, int]], group_size: int) -> Iterator[Ref]:
    """Records of one file, given as (byte offset, position under `key`), in refs of `group_size`."""
    ref = None
    for offset, position in starts:
        if ref is None:
            ref = {"file": str(file), "start": offset, key: position, "count": 0}
        ref["count"] += 1
        if ref["count"] == group_size:
            yield ref
            ref = None
    if ref is not None:
        yield ref


def scan_lines(files: list[Path], group_size: int) -> Iterator[Ref]:
    for file in files:
        with open(file, "rb") as f:
            starts = ((offset, number) for offset, number, _ in iter_json_lines(f, str(file)))
            yield from _grouped(file, "line", starts, group_size)


def records_lines(ref: Ref) -> Iterator[tuple[str, Any]]:
    with open(ref["file"], "rb") as f:
        lines = iter_json_lines(f, ref["file"], ref["start"])
        for _, (_, number, record) in zip(range(ref["count"]), lines, strict=False):
            yield f"line {ref['line'] + number - 1}", record


# -- JSON array (LLaVA-Instruct-150K, ShareGPT4V, ...) ------------------------------------------
def scan_array(files: list[Path], group_size: int) -> Iterator[Ref]:
    for file in files:
        with open(file, "rb") as f:
            starts = ((offset, index) for index, (offset, _) in enumerate(iter_json_array(f, str(file))))
            yield from _grouped(file, "index", starts, group_size)


def records_array(ref: Ref) -> Iterator[tuple[str, Any]]:
    with open(ref["file"], "rb") as f:
        items = iter_json_array(f, ref["file"], ref["start"])
        for k, (_, record) in zip(range(ref["count"]), items, strict=False):
            yield f"[{ref['index'] + k}]", record


# -- parquet (Hugging Face Hub shards, `Dataset.to_parquet`) ------------------------------------
def scan_parquet(files: list[Path], group_size: int) -> Iterator[Ref]:
    """Refs of whole row groups (several small ones merged up to `group_size` rows): a row group is
    the smallest unit parquet reads, so one larger than `group_size` rows is one ref."""
    import pyarrow.parquet as pq

    for file in files:
        metadata = pq.ParquetFile(file).metadata
        row, ref = 0, None
        for group in range(metadata.num_row_groups):
            rows = metadata.row_group(group).num_rows
            if ref is not None and ref["count"] + rows > group_size:
                yield ref
                ref = None
            if ref is None:
                ref = {"file": str(file), "start": group, "stop": group, "row": row, "count": 0}
            ref["stop"], ref["count"], row = group + 1, ref["count"] + rows, row + rows
        if ref is not None and ref["count"]:
            yield ref


def records_parquet(ref: Ref) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    name = Path(ref["file"]).name
    row = ref["row"]
    reader = pq.ParquetFile(ref["file"], pre_buffer=False)
    for batch in reader.iter_batches(batch_size=64, row_groups=range(ref["start"], ref["stop"])):
        for record in batch.to_pylist():
            yield f"{name}:{row}", record
            row += 1


# -- `datasets` save_to_disk: Arrow stream files --------------------------------------------------
def saved_dataset_files(root: Path, split: str) -> list[Path]:
    """The Arrow files of a `save_to_disk` folder (a Dataset, or one split of a DatasetDict)."""
    if (root / "dataset_dict.json").exists():
        splits = json.loads((root / "dataset_dict.json").read_text()).get("splits", [])
        if split not in splits:
            raise SourceError(f"no split {split!r}; the dataset has {splits} (pass --split)", file=str(root))
        root = root / split
    state = root / "state.json"
    if not state.exists():
        raise SourceError("no state.json: not a folder written by `datasets` save_to_disk", file=str(root))
    return [root / item["filename"] for item in json.loads(state.read_text())["_data_files"]]


def _stream_messages(source: pa.NativeFile) -> Iterator[tuple[int, pa.ipc.Message]]:
    reader = pa.ipc.MessageReader.open_stream(source)
    while True:
        offset = source.tell()
        try:
            message = reader.read_next_message()
        except StopIteration:
            return
        yield offset, message


def _stream_schema(source: pa.NativeFile, where: str) -> pa.Schema:
    source.seek(0)
    for _, message in _stream_messages(source):
        return pa.ipc.read_schema(message)
    raise SourceError("empty Arrow stream", file=where)


def scan_arrow(files: list[Path], group_size: int) -> Iterator[Ref]:
    """Refs of record-batch slices, found by walking the message headers of memory-mapped files
    (no data is copied); a ref starts at a batch's byte offset, so reading seeks straight to it."""
    for file in files:
        with pa.memory_map(str(file)) as source:
            schema = _stream_schema(source, str(file))
            row = 0
            for offset, message in _stream_messages(source):
                if message.type != "record batch":
                    raise SourceError(f"unexpected Arrow message {message.type!r}", file=str(file))
                rows = pa.ipc.read_record_batch(message, schema).num_rows
                for first in range(0, rows, group_size):
                    count = min(group_size, rows - first)
                    yield {
                        "file": str(file),
                        "start": offset,
                        "first": first,
                        "row": row + first,
                        "count": count,
                    }
                row += rows


def records_arrow(ref: Ref) -> Iterator[tuple[str, Any]]:
    name = Path(ref["file"]).name
    with pa.memory_map(ref["file"]) as source:
        schema = _stream_schema(source, ref["file"])
        source.seek(ref["start"])
        _, message = next(_stream_messages(source))
        batch = pa.ipc.read_record_batch(message, schema).slice(ref["first"], ref["count"])
        for start in range(0, batch.num_rows, 64):
            for k, record in enumerate(batch.slice(start, 64).to_pylist()):
                yield f"{name}:{ref['row'] + start + k}", record
