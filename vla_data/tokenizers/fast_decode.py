"""FAST ids -> coefficients: by symbol-table lookup where it validates a sequence, otherwise through
the BPE tokenizer's own decode (the reference processor's behaviour), which also names the problem."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from vla_data.tokenizers.symbol_table import SymbolTable

REPLACEMENT_CHAR = 0xFFFD
# What transformers' `clean_up_tokenization` does to a decoded string (FAST+ ships with it on).
CLEAN_UP = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


def clean_up(text: str) -> str:
    for before, after in CLEAN_UP:
        text = text.replace(before, after)
    return text


@dataclass(frozen=True)
class CoefficientReader:
    """Decodes id sequences of one FAST tokenizer into coefficients `[B, size]`."""

    bpe: Tokenizer
    table: SymbolTable | None  # None: every sequence goes through the tokenizer
    min_token: int
    max_token: int
    clean_up_spaces: bool  # the tokenizer config's `clean_up_tokenization_spaces`

    def coefficients(
        self, ids: list[list[int]], size: int, out: np.ndarray, *, relaxed: bool
    ) -> list[str | None]:
        """Fill `out` `[B, size]` with the coefficients of each sequence; the problem of each, or None.

        Valid sequences are decoded by table lookup in one vectorised pass; the rest go through the
        BPE tokenizer's own decode (the reference's behaviour), which also names their problem."""
        if self.table is None or not len(ids):
            return self.with_tokenizer(ids, size, out, relaxed=relaxed)
        codes, ok = self.table.decode(ids, size)  # [n_ok, size] uint32 symbols
        rows = np.flatnonzero(ok)
        in_range = codes.max(axis=1, initial=0) <= self.max_token - self.min_token
        if self.clean_up_spaces:  # a space (code 32) may be rewritten by the clean-up
            in_range &= ~(codes == 32).any(axis=1)
        if in_range.all() and len(rows) == len(ids):  # the common case: no row copies
            np.add(codes, self.min_token, out=out, dtype=np.float64)
        else:
            out[rows[in_range]] = codes[in_range].astype(np.float64) + self.min_token
        ok[rows[~in_range]] = False
        problems: list[str | None] = [None] * len(ids)
        slow = np.flatnonzero(~ok)
        if len(slow):
            sub = np.zeros((len(slow), size), np.float64)
            found = self.with_tokenizer([ids[i] for i in slow], size, sub, relaxed=relaxed)
            out[slow] = sub
            for i, problem in zip(slow, found, strict=True):
                problems[i] = problem
        return problems

    def with_tokenizer(
        self, ids: list[list[int]], size: int, out: np.ndarray, *, relaxed: bool
    ) -> list[str | None]:
        lengths = np.array([len(seq) for seq in ids], dtype=np.int64)
        flat = np.fromiter((i for seq in ids for i in seq), dtype=np.int64, count=int(lengths.sum()))
        outside = np.r_[0, np.cumsum((flat < 0) | (flat >= self.bpe.get_vocab_size()))]
        offsets = np.r_[0, np.cumsum(lengths)]
        bad_ids = outside[offsets[1:]] > outside[offsets[:-1]]  # [B] any id outside the vocabulary
        texts = self.bpe.decode_batch(
            [[] if bad else list(seq) for seq, bad in zip(ids, bad_ids, strict=True)],
            skip_special_tokens=False,
        )
        if self.clean_up_spaces:
            texts = [clean_up(t) for t in texts]
        problems: list[str | None] = []
        for b, text in enumerate(texts):
            if bad_ids[b]:
                problems.append(f"ids outside the vocabulary [0, {self.bpe.get_vocab_size()})")
                continue
            codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
            values = codes + self.min_token
            if (codes == REPLACEMENT_CHAR).any():
                problem = "ids decode to an invalid UTF-8 byte sequence"
            elif len(codes) != size:
                problem = f"decoded {len(codes)} coefficients, expected horizon*action_dim = {size}"
            elif values.max(initial=self.min_token) > self.max_token:
                problem = f"coefficients outside the fitted range [{self.min_token}, {self.max_token}]"
            else:
                out[b] = values
                problems.append(None)
                continue
            problems.append(problem)
            if relaxed:
                kept = np.clip(values[:size], self.min_token, self.max_token)
                kept[codes[:size] == REPLACEMENT_CHAR] = 0
                out[b, : len(kept)] = kept
        return problems
