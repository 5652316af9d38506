"""Batched FAST id -> symbol decoding by table lookup: no tokenizer call per sequence.

The decoders FAST tokenizers use only concatenate: `Fuse` (default mode: a token's string is its
coefficient symbols) and `ByteLevel` (compat mode, FAST+: a token's characters spell UTF-8 bytes
through GPT-2's byte-to-unicode table, or are their own UTF-8 when one is outside it; the bytes of all tokens are joined, then decoded as UTF-8).
Decoding a batch is therefore one gather of per-id symbols (or bytes, then a vectorised UTF-8
decode). Only sequences this path fully validates are decoded here; every other one (ids outside
the vocabulary, invalid UTF-8, ...) is left to the tokenizer's own decode, which defines the error
semantics, so both paths give identical results.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (what `ByteLevel` uses)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


# Bytes a UTF-8 character of 1-3 bytes starts with (0: continuation byte, -1: not handled here:
# overlong C0/C1 and the 4-byte leads F0.. whose code points no FAST alphabet reaches).
UTF8_LENGTH = np.array([1] * 0x80 + [0] * 0x40 + [-1] * 2 + [2] * 30 + [3] * 16 + [-1] * 16, np.int64)


@dataclass(frozen=True)
class SymbolTable:
    """Per id: its symbols (code points, or UTF-8 bytes when `byte_level`) at `flat[start:start+length]`."""

    flat: np.ndarray  # [total] int64
    start: np.ndarray  # [V] int64
    length: np.ndarray  # [V] int64; -1 for an id the vocabulary does not define
    byte_level: bool

    @classmethod
    def of(cls, bpe: Tokenizer) -> SymbolTable | None:
        """The table of a BPE tokenizer with a `Fuse` or `ByteLevel` decoder, else None."""
        spec = json.loads(bpe.to_str())
        model, decoder = spec.get("model") or {}, spec.get("decoder") or {}
        if (
            model.get("type") != "BPE"
            or model.get("continuing_subword_prefix")
            or model.get("end_of_word_suffix")
            or spec.get("added_tokens")
            or decoder.get("type") not in ("Fuse", "ByteLevel")
        ):
            return None
        byte_level = decoder["type"] == "ByteLevel"
        to_byte = {c: b for b, c in byte_to_unicode().items()}
        size = bpe.get_vocab_size()
        pieces: list[list[int]] = [[] for _ in range(size)]
        length = np.full(size, -1, np.int64)
        for token, i in model["vocab"].items():
            if not 0 <= i < size:
                return None
            if not byte_level:
                pieces[i] = [ord(c) for c in token]
            elif all(c in to_byte for c in token):
                pieces[i] = [to_byte[c] for c in token]
            else:  # like `ByteLevel`'s decoder: a token with an unmapped character gives its own UTF-8
                pieces[i] = list(token.encode("utf-8"))
            length[i] = len(pieces[i])
        start = np.concatenate([[0], np.cumsum(np.maximum(length, 0))[:-1]])
        flat = np.fromiter(
            itertools.chain.from_iterable(pieces), np.int64, count=int(np.maximum(length, 0).sum())
        )
        return cls(flat, start, length, byte_level)

    def decode(self, ids: list[list[int]], symbols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Symbols of every sequence expected to hold `symbols` of them, flat `[N]`, with offsets
        `[B + 1]` (sequence b is `out[offsets[b]:offsets[b + 1]]`) and `ok` `[B]`: False where this
        path cannot decode the sequence (unknown ids, malformed UTF-8, a length that cannot give
        `symbols`; those are skipped, so the work stays bounded by the expected length)."""
        count = len(ids)
        lengths = np.fromiter(map(len, ids), np.int64, count=count)
        flat = np.fromiter(itertools.chain.from_iterable(ids), np.int64, count=int(lengths.sum()))
        sequence = np.repeat(np.arange(count), lengths)  # [n_ids] which sequence each id is in
        known = (flat >= 0) & (flat < len(self.length))
        safe = np.where(known, flat, 0)
        size = np.where(known, self.length[safe], -1)  # [n_ids]
        total = np.bincount(sequence, weights=np.maximum(size, 0), minlength=count)
        most = 3 * symbols if self.byte_level else symbols  # UTF-8 of a FAST symbol is 1-3 bytes
        ok = (
            (np.bincount(sequence, weights=size < 0, minlength=count) == 0)
            & (total >= symbols)
            & (total <= most)
        )
        size = np.where(ok[sequence], np.maximum(size, 0), 0)
        ends = np.cumsum(size)
        starts = ends - size
        units = self.flat[
            np.repeat(self.start[safe] - starts, size) + np.arange(int(ends[-1]) if len(ends) else 0)
        ]
        offsets = np.concatenate([[0], ends])[np.concatenate([[0], np.cumsum(lengths)])]
        if not self.byte_level:
            return units, offsets, ok
        return _utf8_decode_fast(units, offsets, ok) or _utf8_decode(units, offsets, ok)


def _utf8_decode_fast(
    data: np.ndarray, offsets: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The common case in one call of Python's UTF-8 codec: if the whole buffer decodes strictly and
    every run starts on a character, every run is valid on its own (a valid stream split at
    character starts stays valid). None otherwise (then `_utf8_decode` finds the bad runs)."""
    raw = data.astype(np.uint8)
    starts = offsets[:-1][np.diff(offsets) > 0]
    if ((raw[starts] & 0xC0) == 0x80).any():
        return None
    try:
        text = raw.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        return None
    codes = np.frombuffer(text.encode("utf-32-le"), "<u4").astype(np.int64)
    before = np.concatenate([[0], np.cumsum((raw & 0xC0) != 0x80)])  # characters before each byte
    return codes, before[offsets], ok


def _utf8_decode(
    data: np.ndarray, offsets: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised strict UTF-8 decode (1-3 byte characters) of the byte runs `data[offsets[b]:offsets[b+1]]`.

    A run with any malformed, truncated, overlong or surrogate sequence gets ok False."""
    count, n = len(offsets) - 1, len(data)
    run_length = np.diff(offsets)
    owner = np.repeat(np.arange(count), run_length)  # [n] which run each byte is in
    need = UTF8_LENGTH[data]
    nonempty = run_length > 0
    ok = ok.copy()
    ok[nonempty] &= need[offsets[:-1][nonempty]] != 0  # a run cannot start inside a character
    lead = np.flatnonzero(need != 0)
    end = np.minimum(np.append(lead[1:], n), offsets[1:][owner[lead]])
    width = need[lead]
    first = data[lead]
    second = data[np.minimum(lead + 1, max(n - 1, 0))]
    third = data[np.minimum(lead + 2, max(n - 1, 0))]
    wrong = (end - lead != width) | ((first == 0xE0) & (second < 0xA0)) | ((first == 0xED) & (second >= 0xA0))
    ok &= np.bincount(owner[lead], weights=wrong, minlength=count) == 0
    codes = np.where(
        width == 1,
        first,
        np.where(
            width == 2,
            ((first & 0x1F) << 6) | (second & 0x3F),
            ((first & 0x0F) << 12) | ((second & 0x3F) << 6) | (third & 0x3F),
        ),
    )
    characters = np.bincount(owner[lead], minlength=count)
    return codes, np.concatenate([[0], np.cumsum(characters)]), ok
