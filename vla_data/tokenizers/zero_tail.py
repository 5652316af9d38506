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
"""

from __future__ import annotations

import json
import unicodedata

import numpy as np
from tokenizers import Tokenizer

UNSAFE, SEPARATE, JOINED = 0, 1, 2  # the symbol before the tail: no cut / tail is its own word / same word
CONTRACTION_LETTERS = "strvmlde"  # GPT-2's regex: 's 't 're 've 'm 'll 'd
ASCII_WHITESPACE = " \t\n\x0b\x0c\r"  # `\s` in every regex engine
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


def _regex_class(char: str) -> str:
    """GPT-2 regex class of a non-whitespace character: letter, number, or anything else."""
    category = unicodedata.category(char)[0]
    return category if category in "LN" else "P"


def _unsafe(char: str) -> bool:
    # Whitespace takes part in the regex's lookahead. Python's `isspace` is a superset of the
    # Unicode White_Space that Oniguruma's `\s` matches (it adds U+001C-U+001F).
    return char.isspace() or unicodedata.category(char)[0] == "Z"


def _byte_level_joins(zero: int, alphabet: int) -> np.ndarray | None:
    """Per symbol `p` that may end the head: how the tail relates to its word under GPT-2's regex.

    Cut after a non-whitespace `p`, the head alone is split as in `s` (matches that do not touch the
    cut are the same; the last one ends at `p` in both unless the tail continues its run), and the
    tail `z^m` alone is one word (a run of one class; for whitespace, `\\s+(?!\\S)` up to the end of
    the string). In `s` the tail continues `p`'s word iff `p` and `z` are in the same class. None if
    `z` could take part in a contraction (`'s`, `'re`, ...) or is whitespace beyond ASCII."""
    z = chr(zero)
    if z in ASCII_WHITESPACE:
        cls = None  # no non-whitespace `p` shares it: the tail is always its own word
    elif _unsafe(z) or z.lower() in CONTRACTION_LETTERS:
        return None
    else:
        cls = _regex_class(z)
    return np.array(
        [
            UNSAFE if _unsafe(chr(p)) else JOINED if _regex_class(chr(p)) == cls else SEPARATE
            for p in range(alphabet)
        ],
        np.int8,
    )


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
    ):
        self.bpe = bpe
        self.zero = zero
        self.joins = joins  # [alphabet] int8, see UNSAFE / SEPARATE / JOINED
        self.operands = operands  # token -> the two tokens its merge joins
        self.merges = set(operands.values())
        self.one_word = one_word  # no pre-tokenizer: a token's string is its input symbols
        # `encode_batch_fast` (tokenizers >= 0.20) skips the character offsets nobody here reads.
        self._encode_batch = getattr(bpe, "encode_batch_fast", bpe.encode_batch)
        self._tails: dict[tuple[int, int], list[int]] = {}  # (L or -1, m) -> BPE(L + z^m)
        self._compatible: dict[tuple[int, int], bool] = {}  # (L, R) -> BPE(L + R) == [L, R]

    @classmethod
    def of(cls, bpe: Tokenizer, zero: int, alphabet: int) -> ZeroTailEncoder | None:
        """For a tokenizer whose ids the cut provably keeps (plain BPE without dropout, rank-ordered
        merges, no normalizer, added tokens, padding, truncation or ids added after the model; no
        pre-tokenizer, or a byte-level one without a prefix space), else None. `zero`: the symbol of
        coefficient 0, in [0, alphabet)."""
        spec = json.loads(bpe.to_str())
        model = spec.get("model") or {}
        pre = spec.get("pre_tokenizer")
        post = spec.get("post_processor") or {"type": "ByteLevel"}  # ByteLevel only trims offsets
        if (
            not 0 <= zero < alphabet
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
        if pre is None or (pre.get("type") == "ByteLevel" and not pre.get("use_regex", True)):
            joins = np.full(alphabet, JOINED, np.int8)  # the whole string is one word
        elif pre.get("type") == "ByteLevel" and not pre.get("add_prefix_space"):
            joins = _byte_level_joins(zero, alphabet)
        else:
            return None
        operands = merge_tree(model)
        if joins is None or operands is None:
            return None
        return cls(bpe, zero, joins, operands, one_word=pre is None)

    def encode(self, symbols: np.ndarray) -> list[list[int]]:
        """Token ids of each row of `symbols` `[B, N]` (every symbol in [0, alphabet)), identical to
        the tokenizer's `encode` of the row's string."""
        count, n = symbols.shape
        if not count or not n:
            return [[] for _ in range(count)]
        nonzero = symbols != self.zero
        tail = np.where(nonzero.any(axis=1), np.argmax(nonzero[:, ::-1], axis=1), n)  # [B] zero run
        head = n - tail
        before = symbols[np.arange(count), np.maximum(head - 1, 0)]  # [B] symbol ending the head
        join = np.where(head > 0, self.joins[before], SEPARATE)
        cut = np.where((tail > 0) & (join != UNSAFE), head, n)  # [B] encode the first `cut` symbols
        ids = [e.ids for e in self._encode_batch(strings(symbols, cut))]
        self._learn_tails([(-1, m) for m in np.unique(n - cut).tolist() if m])
        stuck = []  # (row, L, m): the pair at the cut may merge
        for b, (m, joined) in enumerate(zip((n - cut).tolist(), (join == JOINED).tolist(), strict=True)):
            if m:
                tail_ids = self._tails[(-1, m)]
                if ids[b] and joined and not self._pair_compatible(ids[b][-1], tail_ids[0]):
                    stuck.append((b, ids[b][-1], m))
                else:
                    ids[b] = ids[b] + tail_ids
        redo = self._recut(ids, stuck) if self.one_word else [b for b, _, _ in stuck]
        if redo:
            for b, e in zip(redo, self._encode_batch(strings(symbols[np.array(redo)])), strict=True):
                ids[b] = e.ids
        return ids

    def _recut(self, ids: list[list[int]], stuck: list[tuple[int, int, int]]) -> list[int]:
        """Move each stuck cut left, to the start of the head's last token L: the head without L
        encodes to its ids without L (a token-aligned prefix), the new tail is L + z^m. Rows whose
        new cut is still not provably exact are returned."""
        self._learn_tails(list({(left, m) for _, left, m in stuck}))
        redo = []
        for b, left, m in stuck:
            tail_ids = self._tails[(left, m)]
            if len(ids[b]) == 1:
                ids[b] = tail_ids
            elif self._pair_compatible(ids[b][-2], tail_ids[0]):
                ids[b] = ids[b][:-1] + tail_ids
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
        for key, e in zip(new, self._encode_batch(texts), strict=True):
            self._tails[key] = e.ids

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
