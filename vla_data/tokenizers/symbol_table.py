"""Batched FAST id -> symbol decoding by table lookup: no tokenizer call per sequence.

The decoders FAST tokenizers use only concatenate: `Fuse` (default mode: a token's string is its
coefficient symbols) and `ByteLevel` (compat mode, FAST+: a token's characters spell UTF-8 bytes
through GPT-2's byte-to-unicode table, or are their own UTF-8 when one is outside it; the bytes of
all tokens are joined, then decoded as UTF-8). Decoding a batch is therefore one join of per-id
strings (or bytes, then one strict UTF-8 decode) for all its sequences, checked per sequence with
per-id counts. Only sequences this path fully validates are decoded here; every other one (ids
outside the vocabulary, invalid UTF-8, a wrong length) is left to the tokenizer's own decode, which
defines the error semantics, so both paths give identical results.
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


@dataclass(frozen=True)
class SymbolTable:
    """Per id: its text (`str` of symbols, or UTF-8 `bytes` when `byte_level`), how many symbols it
    starts (code points; for bytes, those that begin a character) and whether it begins with one."""

    pieces: np.ndarray  # [V] object: str | bytes; empty for an id the vocabulary does not define
    starts: np.ndarray  # [V] int64; -1 for an id the vocabulary does not define
    lead: np.ndarray  # [V] bool: its first unit begins a symbol
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
        pieces: list = [b"" if byte_level else ""] * size
        starts = np.full(size, -1, np.int64)
        lead = np.zeros(size, bool)
        for token, i in model["vocab"].items():
            if not 0 <= i < size:
                return None
            if not byte_level:
                pieces[i], starts[i], lead[i] = token, len(token), bool(token)
                continue
            if all(c in to_byte for c in token):
                piece = bytes(to_byte[c] for c in token)
            else:  # like `ByteLevel`'s decoder: a token with an unmapped character gives its own UTF-8
                piece = token.encode("utf-8")
            pieces[i] = piece
            starts[i] = sum((b & 0xC0) != 0x80 for b in piece)
            lead[i] = bool(piece) and (piece[0] & 0xC0) != 0x80
        table = np.empty(size, object)
        table[:] = pieces
        return cls(table, starts, lead, byte_level)

    def decode(self, ids: list[list[int]], symbols: int) -> tuple[np.ndarray, np.ndarray]:
        """Code points `[n_ok, symbols]` (uint32) of the sequences this path decodes, in order, and
        `ok` `[B]`: False where it cannot (unknown ids, malformed UTF-8, not exactly `symbols`
        symbols; those are never joined, so the work stays bounded by the expected length)."""
        count = len(ids)
        lengths = np.fromiter(map(len, ids), np.int64, count=count)
        flat = np.fromiter(itertools.chain.from_iterable(ids), np.int64, count=int(lengths.sum()))
        known = (flat >= 0) & (flat < len(self.starts))
        safe = np.where(known, flat, 0)
        per_id = np.where(known, self.starts[safe], -1)  # [n_ids] symbols each id starts
        bounds = np.concatenate([[0], np.cumsum(lengths)])  # sequence b: ids bounds[b]:bounds[b + 1]
        unknown = np.concatenate([[0], np.cumsum(per_id < 0)])
        started = np.concatenate([[0], np.cumsum(np.maximum(per_id, 0))])
        ok = (unknown[bounds[1:]] == unknown[bounds[:-1]]) & (
            started[bounds[1:]] - started[bounds[:-1]] == symbols
        )
        if symbols and len(flat):  # a sequence may not begin inside a character
            ok &= self.lead[safe[np.minimum(bounds[:-1], len(flat) - 1)]]
        kept = self.pieces[flat[np.repeat(ok, lengths)]].tolist()  # [n_kept] str | bytes
        if not self.byte_level:
            text = "".join(kept)
        else:
            text = self._utf8(kept, flat, bounds, ok)
        return np.frombuffer(text.encode("utf-32-le"), "<u4").reshape(int(ok.sum()), symbols), ok

    def _utf8(self, kept: list[bytes], flat: np.ndarray, bounds: np.ndarray, ok: np.ndarray) -> str:
        """The text of the ok sequences' bytes, in one strict decode. A valid stream cut where
        characters begin stays valid, so if the whole stream decodes each sequence does (each begins
        on a character); otherwise each is decoded alone, and those that fail get ok False."""
        try:
            return b"".join(kept).decode("utf-8")
        except UnicodeDecodeError:
            texts = []
            for b in np.flatnonzero(ok).tolist():
                try:
                    texts.append(
                        b"".join(self.pieces[flat[bounds[b] : bounds[b + 1]]].tolist()).decode("utf-8")
                    )
                except UnicodeDecodeError:
                    ok[b] = False
            return "".join(texts)
