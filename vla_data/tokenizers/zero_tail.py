"""Exact BPE of FAST strings cut before their trailing run of zero coefficients.

The high frequencies of a smooth chunk round to 0, so most of a FAST string is one run: a 30x26
chunk is typically ~250 varied symbols followed by ~500 copies of the zero symbol `z`. Hugging Face's
BPE spends ~150 ns per character and caches no word over 256 bytes, so it re-merges that run for
every chunk. Here a string `s = head + z^m` is encoded as BPE(head) + BPE(z^m), BPE(z^m) computed
once per m, whenever that is provably what the tokenizer itself returns for `s`; otherwise `s` is
encoded whole. All BPE is the tokenizer's own.

Why the cut is exact. Byte-level tokenizers (FAST+, `compat`) first split a string into words with
GPT-2's regex; the cut is used only where the head's words are those of `s` (see `_byte_level_joins`).
If the tail is a word of its own, nothing crosses the cut. Otherwise it continues the head's last
word (always, without a pre-tokenizer), and BPE of that word is the question. Take merges that are
rank-ordered (every merge's two operands are base characters or made by one earlier merge; no token
made twice, as BPE training produces). Then BPE applies merges rank by rank, each rank's pair left
to right, and a span of a word that ends up token-aligned evolves exactly as it would alone. Let L
be the last token of BPE(head) and R the first of BPE(z^m), and suppose BPE(L + R) = [L, R]. By
induction over ranks, as long as no merge has crossed the cut, the symbols touching it are those of
L's and R's own build-up at that rank, as in L + R, and the left one is taken by a merge from its
left exactly when it is in L + R; so the pair at the cut merges in `s` exactly when it does in
L + R, i.e. never, and BPE(s) = BPE(head) + BPE(z^m).

Around the BPE call (which is most of the time): equal heads in a batch are encoded once and heads
are packed many per tokenizer input (`bpe_batch.BpeBatch`); for byte-level tokenizers a head that is
one word under the regex (a run of one class, as smooth chunks' heads are) is handed over already
mapped to its byte-level string, skipping the pre-tokenizer.
"""

from __future__ import annotations

import json

import numpy as np
from tokenizers import Tokenizer

from vla_data.tokenizers.bpe_batch import SEPARATOR, BpeBatch
from vla_data.tokenizers.symbol_table import byte_to_unicode
from vla_data.tokenizers.zero_tail_words import (
    JOINED,
    SEPARATE,
    UNSAFE,
    ByteLevelText,
    byte_level_joins,
    word_classes,
)

MAX_CACHED = 1 << 16  # entries per cache


def strings(symbols: np.ndarray, lengths: np.ndarray | None = None) -> list[str]:
    """Rows of code points `[B, N]` -> one string per row, of its first `lengths[b]` symbols (all
    by default); one UTF-32 decode for the batch, then a slice per row."""
    count, n = symbols.shape
    text = np.ascontiguousarray(symbols, dtype="<u4").tobytes().decode("utf-32-le")
    if lengths is None:
        return [text[i : i + n] for i in range(0, count * n, n)]
    return [text[i * n : i * n + k] for i, k in enumerate(lengths.tolist())]


def merge_tree(model: dict) -> dict[int, tuple[int, int]] | None:
    """Token id -> the ids of the two tokens its merge joins, for a BPE model (its JSON) whose merges
    are rank-ordered: each merge's operands are base characters or made by one earlier merge, and no
    token is made by two merges (what BPE training produces). None otherwise."""
    vocab = model.get("vocab") or {}
    operands: dict[int, tuple[int, int]] = {}
    rank_of: dict[int, int] = {}
    for rank, merge in enumerate(model.get("merges") or []):
        pair = merge.split(" ") if isinstance(merge, str) else merge
        if len(pair) != 2 or any(t not in vocab for t in pair) or pair[0] + pair[1] not in vocab:
            return None
        made = vocab[pair[0] + pair[1]]
        if made in operands:
            return None
        operands[made], rank_of[made] = (vocab[pair[0]], vocab[pair[1]]), rank
    ordered = all(rank_of.get(t, -1) < rank_of[made] for made, pair in operands.items() for t in pair)
    return operands if ordered else None


class ZeroTailEncoder:
    """Encodes rows of FAST symbols `[B, N]` with the cut above; build with `of`."""

    def __init__(
        self,
        bpe: Tokenizer,
        zero: int,
        joins: np.ndarray,
        operands: dict[int, tuple[int, int]],
        *,
        one_word: bool,
        word_class: np.ndarray | None = None,
    ):
        self.bpe = bpe
        self.zero = zero
        self.joins = joins  # [alphabet] int8, see UNSAFE / SEPARATE / JOINED
        self.operands = operands  # token -> the two tokens its merge joins
        self.merges = set(operands.values())
        self.one_word = one_word  # no pre-tokenizer: a token's string is its input symbols
        self._plain = BpeBatch.of(bpe, words=one_word) or BpeBatch(bpe, None)
        # Byte-level: a row that is one word under the regex goes to BPE mapped to its byte-level
        # string, skipping the pre-tokenizer (the same word, so the same ids).
        self.word_class = word_class  # [alphabet] int8 regex class (0: never one word), or None
        self._mapped = None
        if word_class is not None and not one_word:
            words = BpeBatch.of(bpe, words=True)
            if words is not None:
                self._mapped = (ByteLevelText(), words)
        self._tails: dict[tuple[int, int], list[int]] = {}  # (L or -1, m) -> BPE(L + z^m)
        self._compatible: dict[tuple[int, int], bool] = {}  # (L, R) -> BPE(L + R) == [L, R]

    @classmethod
    def of(cls, bpe: Tokenizer, zero: int, alphabet: int) -> ZeroTailEncoder | None:
        """For a tokenizer whose ids the cut provably keeps (plain BPE without dropout, rank-ordered
        merges, no normalizer, added tokens, padding, truncation or ids added after the model; no
        pre-tokenizer, or a byte-level one without a prefix space; the zero symbol in the vocabulary,
        and every symbol if there is an unknown token, which would stand for unknown characters and
        may fuse across the cut), else None. `zero`: the symbol of coefficient 0, in [0, alphabet)."""
        spec = json.loads(bpe.to_str())
        model = spec.get("model") or {}
        pre = spec.get("pre_tokenizer")
        post = spec.get("post_processor") or {"type": "ByteLevel"}  # ByteLevel only trims offsets
        if (
            not 0 <= zero < alphabet <= ord(SEPARATOR)  # packed heads hold no separator
            or model.get("type") != "BPE"
            or model.get("dropout")
            or model.get("ignore_merges")
            or model.get("continuing_subword_prefix")
            or model.get("end_of_word_suffix")
            or model.get("byte_fallback")
            or spec.get("added_tokens")
            or spec.get("normalizer")
            or spec.get("truncation")
            or spec.get("padding")
            or post.get("type") != "ByteLevel"
        ):
            return None
        classes = None
        if pre is None or (pre.get("type") == "ByteLevel" and not pre.get("use_regex", True)):
            joins = np.full(alphabet, JOINED, np.int8)  # the whole string is one word
            classes = None if pre is None else np.ones(alphabet, np.int8)
            if classes is not None:
                classes[0xD800:0xE000] = 0  # surrogates: no string holds them
        elif pre.get("type") == "ByteLevel" and not pre.get("add_prefix_space"):
            classes = word_classes(bpe, alphabet)
            joins = byte_level_joins(classes, zero)
        else:
            return None
        spelled = _spelled(model.get("vocab") or {}, alphabet, byte_level=pre is not None)
        if not spelled[zero] or (model.get("unk_token") is not None and not spelled.all()):
            return None
        operands = merge_tree(model)
        if joins is None or operands is None:
            return None
        return cls(bpe, zero, joins, operands, one_word=pre is None, word_class=classes)

    def encode(self, symbols: np.ndarray) -> list[list[int]]:
        """Token ids of each row of `symbols` `[B, N]` (every symbol in [0, alphabet)), identical to
        the tokenizer's `encode` of the row's string. Equal heads are encoded once."""
        count, n = symbols.shape
        if not count or not n:
            return [[] for _ in range(count)]
        nonzero = symbols != self.zero
        tail = np.where(nonzero.any(axis=1), np.argmax(nonzero[:, ::-1], axis=1), n)  # [B] zero run
        head = n - tail
        before = symbols[np.arange(count), np.maximum(head - 1, 0)]  # [B] symbol ending the head
        join = np.where(head > 0, self.joins[before], SEPARATE)
        cut = np.where((tail > 0) & (join != UNSAFE), head, n)  # [B] encode the first `cut` symbols
        heads, shared = self._encode_heads(symbols, cut)
        runs = n - cut  # [B] zeros after the cut
        if not runs.any():
            return [list(h) for h in heads] if shared else heads
        lengths = np.unique(runs).tolist()
        self._learn_tails([(-1, m) for m in lengths if m])
        by_run: list[list[int]] = [[]] * (n + 1)  # m -> BPE(z^m)
        for m in lengths:
            if m:
                by_run[m] = self._tails[(-1, m)]
        ids = [h + by_run[m] for h, m in zip(heads, runs.tolist(), strict=True)]  # new lists
        stuck = self._stuck(heads, runs, (runs > 0) & (join == JOINED) & (head > 0), by_run)
        redo = self._recut(ids, heads, stuck) if self.one_word else [b for b, _, _ in stuck]
        if redo:
            whole, _ = self._plain(strings(symbols[np.array(redo)]))
            for b, row_ids in zip(redo, whole, strict=True):
                ids[b] = list(row_ids)
        return ids

    def _encode_heads(self, symbols: np.ndarray, cut: np.ndarray) -> tuple[list[list[int]], bool]:
        """BPE ids of each row's first `cut[b]` symbols `[B]`; True if equal rows share lists."""
        if self._mapped is None:
            return self._plain(strings(symbols, cut))
        classes = self.word_class[symbols]  # [B, N]
        inside = np.arange(symbols.shape[1]) < cut[:, None]
        one = ((classes > 0) & (classes == classes[:, :1]) | ~inside).all(axis=1)  # [B] one regex word
        mapped, words = self._mapped
        if one.all():
            return words(mapped(strings(symbols, cut)))
        ids: list[list[int]] = [[]] * len(symbols)
        shared = False
        for rows, texts, encode in (
            (np.flatnonzero(one), lambda r: mapped(strings(symbols[r], cut[r])), words),
            (np.flatnonzero(~one), lambda r: strings(symbols[r], cut[r]), self._plain),
        ):
            if len(rows):
                part, part_shared = encode(texts(rows))
                shared |= part_shared
                for b, row_ids in zip(rows.tolist(), part, strict=True):
                    ids[b] = row_ids
        return ids, shared

    def _stuck(
        self, heads: list[list[int]], runs: np.ndarray, joined: np.ndarray, by_run: list[list[int]]
    ) -> list[tuple[int, int, int]]:
        """(row, L, m) of each row whose tail joins the head's last word and whose boundary tokens
        L, R are not compatible: there the pair at the cut may merge."""
        rows = np.flatnonzero(joined).tolist()
        if not rows:
            return []
        lefts = [heads[b][-1] if heads[b] else -1 for b in rows]  # an empty head: nothing to cross
        run_of = runs.tolist()
        pairs = {(left, by_run[run_of[b]][0]) for b, left in zip(rows, lefts, strict=True)}
        bad = {pair for pair in pairs if pair[0] >= 0 and not self._pair_compatible(*pair)}
        if not bad:
            return []
        return [
            (b, left, run_of[b])
            for b, left in zip(rows, lefts, strict=True)
            if (left, by_run[run_of[b]][0]) in bad
        ]

    def _recut(
        self, ids: list[list[int]], heads: list[list[int]], stuck: list[tuple[int, int, int]]
    ) -> list[int]:
        """Move each stuck cut left, to the start of the head's last token L: the head without L
        encodes to its ids without L (a token-aligned prefix), the new tail is L + z^m. Rows whose
        new cut is still not provably exact are returned."""
        self._learn_tails(list({(left, m) for _, left, m in stuck}))
        redo = []
        for b, left, m in stuck:
            tail_ids, head_ids = self._tails[(left, m)], heads[b]
            if len(head_ids) == 1:
                ids[b] = list(tail_ids)
            elif self._pair_compatible(head_ids[-2], tail_ids[0]):
                ids[b] = head_ids[:-1] + tail_ids
            else:
                redo.append(b)
        return redo

    def _learn_tails(self, keys: list[tuple[int, int]]) -> None:
        new = [key for key in keys if key not in self._tails]
        if not new:
            return
        if len(self._tails) + len(new) > MAX_CACHED:
            self._tails.clear()
        texts = [(self.bpe.id_to_token(left) if left >= 0 else "") + chr(self.zero) * m for left, m in new]
        for key, tail_ids in zip(new, self._plain(texts)[0], strict=True):
            self._tails[key] = tail_ids

    def _pair_compatible(self, left: int, right: int) -> bool:
        """Whether BPE(L + R) == [L, R]: no merge ever crosses between the tokens L and R."""
        known = self._compatible.get((left, right))
        if known is None:
            if len(self._compatible) >= MAX_CACHED:
                self._compatible.clear()
            reduced = self._reduce(left, right)
            known = reduced is None or self._bpe_keeps(*reduced) or self._bpe_keeps(left, right)
            self._compatible[(left, right)] = known
        return known

    def _reduce(self, left: int, right: int) -> tuple[int, int] | None:
        """A shorter pair whose compatibility implies that of (L, R), or None if (L, R) is compatible
        outright.

        While L is built, the symbol at its right end runs down L's right spine (L, its right operand,
        that one's right operand, ... a character), R's left end down R's left spine; the pair at the
        boundary is always one of these. If no merge joins any of them, nothing ever crosses. Else, with
        L' the first on L's spine and R' the first on R's that take part in such a merge, every pair
        that could merge across is one of L' + R' (and at the same ranks), so BPE(L' + R') == [L', R']
        is enough."""
        left_spine, right_spine = self._spine(left, 1), self._spine(right, 0)
        hits = [
            (i, j)
            for i, x in enumerate(left_spine)
            for j, y in enumerate(right_spine)
            if (x, y) in self.merges
        ]
        if not hits:
            return None
        return left_spine[min(i for i, _ in hits)], right_spine[min(j for _, j in hits)]

    def _spine(self, token: int, side: int) -> list[int]:
        spine = [token]
        while spine[-1] in self.operands:
            spine.append(self.operands[spine[-1]][side])
        return spine

    def _bpe_keeps(self, left: int, right: int) -> bool:
        text = self.bpe.id_to_token(left) + self.bpe.id_to_token(right)
        return [t.id for t in self.bpe.model.tokenize(text)] == [left, right]


def _spelled(vocab: dict[str, int], alphabet: int, *, byte_level: bool) -> np.ndarray:
    """Bool `[alphabet]`: symbols whose characters (byte-level: those of their UTF-8 bytes) are all
    in the vocabulary, so BPE never drops them or puts an unknown token in their place."""
    to_char = byte_to_unicode()

    def spelled(symbol: int) -> bool:
        if not byte_level:
            return chr(symbol) in vocab
        return all(to_char[b] in vocab for b in chr(symbol).encode("utf-8", "surrogatepass"))

    return np.array([spelled(s) for s in range(alphabet)], bool)
