"""BPE of a batch of strings in as few tokenizer calls as the ids allow, ids exactly the tokenizer's.

Each input of `encode_batch_fast` costs ~2 us beyond its BPE (an `Encoding` with token strings, a
Python object, a list of ids), a third of the work for a short FAST chunk. Strings the tokenizer
takes as one word each (no pre-tokenizer) are therefore packed, many per input, with a separator
character that no string holds: a copy of the tokenizer splits at it (`Split`, isolated) and knows it
as one extra token with a new id. BPE works word by word and the separator word is that token, so an
input's ids are the strings' own ids with the separator id after each, and splitting there gives
them back. The copies have no word cache (words are seldom met twice here, and inserting each costs
more than a hit saves) and no post-processor (ByteLevel's only trims offsets); the model's JSON is
compared with the original's, else the original is used.
"""

from __future__ import annotations

import json

from tokenizers import Tokenizer, models, pre_tokenizers

SEPARATOR = "\U0010ffff"  # a noncharacter: in no FAST alphabet, never a byte-level character
PER_INPUT = 64  # strings packed per input, at most
INPUTS = 8  # at least this many inputs per batch when there are enough strings (threads)


def bare_copy(bpe: Tokenizer, *, words: bool = False, separator: str | None = None) -> Tokenizer | None:
    """`bpe` without word cache, post-processor and decoder. `words`: also without its pre-tokenizer
    (strings go to the model as one word each), or, with `separator`, splitting only at
    `separator`, which becomes one more token. None if the copy's model (less the separator),
    normalizer or kept pre-tokenizer is not exactly the original's."""
    spec = json.loads(bpe.to_str())
    model = spec["model"]
    vocab = dict(model.get("vocab") or {})
    if separator is not None:
        if separator in vocab:
            return None
        vocab[separator] = max(vocab.values(), default=-1) + 1
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges") or []]
    copy = Tokenizer.from_str(bpe.to_str())
    copy.model = models.BPE(
        vocab,
        merges,
        cache_capacity=0,
        unk_token=model.get("unk_token"),
        fuse_unk=bool(model.get("fuse_unk")),
    )
    copy.post_processor = None
    copy.decoder = None
    if words:
        copy.pre_tokenizer = pre_tokenizers.Split(separator, "isolated") if separator else None
    kept = json.loads(copy.to_str())
    if separator is not None:
        del kept["model"]["vocab"][separator]
    if kept["model"] != model or kept["normalizer"] != spec["normalizer"]:
        return None
    return copy if words or kept["pre_tokenizer"] == spec["pre_tokenizer"] else None


class BpeBatch:
    """Ids of each string of a batch, as the tokenizer's own; equal strings are encoded once. With
    `words`, each string goes to the BPE model as one word, as given: the tokenizer has no
    pre-tokenizer, or the caller did its work (a byte-level string of one regex word); such
    strings are packed. Build with `of`."""

    def __init__(self, tokenizer: Tokenizer, separator_id: int | None):
        self.separator_id = separator_id
        # `encode_batch_fast` (tokenizers >= 0.20) skips the character offsets nobody here reads.
        self._encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)

    @classmethod
    def of(cls, bpe: Tokenizer, *, words: bool) -> BpeBatch | None:
        """None only if `words` and no exact copy without the pre-tokenizer can be made."""
        if not words:
            return cls(bare_copy(bpe) or bpe, None)
        packed = bare_copy(bpe, words=True, separator=SEPARATOR)
        if packed is not None:
            return cls(packed, packed.token_to_id(SEPARATOR))
        plain = bare_copy(bpe, words=True)
        return cls(plain, None) if plain is not None else None

    def __call__(self, texts: list[str]) -> tuple[list[list[int]], bool]:
        """Ids per text, and whether equal texts share one list (copy before changing one)."""
        first = dict.fromkeys(texts)
        if len(first) == len(texts):
            return self._ids(texts), False
        for text, ids in zip(first, self._ids(list(first)), strict=True):
            first[text] = ids
        return list(map(first.__getitem__, texts)), True

    def _ids(self, texts: list[str]) -> list[list[int]]:
        if self.separator_id is None or len(texts) < 2 * INPUTS:
            return [e.ids for e in self._encode(texts)]
        size = max(1, min(PER_INPUT, len(texts) // INPUTS))
        inputs = [SEPARATOR.join(texts[i : i + size]) + SEPARATOR for i in range(0, len(texts), size)]
        out: list[list[int]] = []
        separator = self.separator_id
        for e, start in zip(self._encode(inputs), range(0, len(texts), size), strict=True):
            ids, begin = e.ids, 0
            for _ in range(min(size, len(texts) - start)):
                end = ids.index(separator, begin)
                out.append(ids[begin:end])
                begin = end + 1
        return out
