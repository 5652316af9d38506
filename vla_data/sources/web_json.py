"""Streaming JSON containers for web data: JSON Lines, a top-level JSON array (LLaVA), and the
arrays inside a top-level object (COCO). Nothing here holds more than one record (plus a read
buffer) in memory; records are addressed by byte offsets so a group is read by seeking to it.

    >>> for offset, record in iter_json_array(open("llava.json", "rb")):
    ...     ...  # offset: the byte where the record starts (give it back as `start=`)
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import IO, Any

from vla_data.errors import SourceError

CHUNK = 1 << 20
MAX_RECORD_BYTES = 256 << 20  # a "record" larger than this is taken for a syntax error
_DECODER = json.JSONDecoder()
_SPACE = " \t\r\n"


class _Buffer:
    """Text read from a binary file, with the byte offset of its first character."""

    def __init__(self, f: IO[bytes], where: str, start: int = 0):
        f.seek(start)
        self.f, self.where = f, where
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text, self.pos, self.byte = "", 0, start  # `byte` is the offset of text[pos]
        self.eof = False

    def more(self, at_least: int = CHUNK) -> bool:
        if self.eof:
            return False
        data = self.f.read(max(CHUNK, at_least))
        self.eof = not data
        if self.pos > CHUNK:  # drop what was consumed
            self.text, self.pos = self.text[self.pos :], 0
        self.text += self.decoder.decode(data, final=self.eof)
        return bool(data)

    def peek(self) -> str:
        """The next non-space character ("" at the end of the file), consumed spaces skipped."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
                self.pos += 1
                self.byte += 1  # spaces are one byte each
            if self.pos < len(self.text) or not self.more():
                return self.text[self.pos : self.pos + 1]

    def expect(self, chars: str) -> str:
        c = self.peek()
        if not c or c not in chars:
            raise SourceError(
                f"byte {self.byte}: expected one of {chars!r}, found {c or 'the end'!r}", file=self.where
            )
        self.pos += 1
        self.byte += 1
        return c

    def value(self) -> Any:
        """Decode the JSON value at the current position, reading more of the file as needed."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as e:
                pending = len(self.text) - self.pos
                if pending > MAX_RECORD_BYTES or not self.more(pending):
                    raise SourceError(f"byte {self.byte}: not valid JSON ({e.msg})", file=self.where) from e
                continue
            if end == len(self.text) and self.more():  # a number may go on in the next chunk
                continue
            self.byte += len(self.text[self.pos : end].encode("utf-8"))
            self.pos = end
            return value


def iter_json_array(f: IO[bytes], where: str, start: int | None = None) -> Iterator[tuple[int, Any]]:
    """(byte offset, element) of a top-level JSON array; `start` resumes at an element's offset."""
    buffer = _Buffer(f, where, start or 0)
    if start is None:
        buffer.expect("[")
        if buffer.peek() == "]":
            return
    while True:
        offset = buffer.byte
        yield offset, buffer.value()
        if buffer.expect(",]") == "]":
            return


def iter_object_arrays(f: IO[bytes], where: str) -> Iterator[tuple[str, Any]]:
    """(key, element) for every element of every array value of a top-level JSON object, one at a
    time (COCO's `images`, `annotations`, `categories`); other values come as (key, value)."""
    buffer = _Buffer(f, where)
    buffer.expect("{")
    if buffer.peek() == "}":
        return
    while True:
        key = buffer.value()
        buffer.expect(":")
        if buffer.peek() == "[":
            buffer.expect("[")
            if buffer.peek() == "]":
                buffer.expect("]")
            else:
                while True:
                    yield key, buffer.value()
                    if buffer.expect(",]") == "]":
                        break
        else:
            yield key, buffer.value()
        if buffer.expect(",}") == "}":
            return


def iter_json_lines(f: IO[bytes], where: str, start: int = 0) -> Iterator[tuple[int, int, Any]]:
    """(byte offset, line number, record) of a JSON Lines file; blank lines are passed over.
    A line that is not JSON yields a `SourceError` as its record (the caller decides to skip it)."""
    f.seek(start)
    offset, number = start, 0
    for line in f:
        number += 1
        if line.strip():
            try:
                record: Any = json.loads(line)
            except json.JSONDecodeError as e:
                record = SourceError(f"line at byte {offset} is not JSON ({e.msg})", file=where)
            yield offset, number, record
        offset += len(line)


def json_container(path: str) -> str:
    """ "lines" (JSON Lines, or any .jsonl), "array" (a top-level array) or "object" (COCO-style)."""
    if path.endswith(".jsonl"):
        return "lines"
    with open(path, "rb") as f:
        start = f.read(4096).lstrip()[:1]
    return {b"[": "array", b"{": "object"}.get(start, "lines")


def first_record(path: str) -> Any:
    """The first record of a JSON Lines file or a JSON array (None when there is none)."""
    with open(path, "rb") as f:
        if json_container(path) == "array":
            records = (record for _, record in iter_json_array(f, path))
        else:
            records = (record for _, _, record in iter_json_lines(f, path))
        return next(records, None)
