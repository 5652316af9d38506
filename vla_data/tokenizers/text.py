"""Text tokenizers the batch builder can use: a small built-in byte-level one (tests, demo) and any
Hugging Face `tokenizer.json` / `tokenizers.Tokenizer` / `transformers` tokenizer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vla_data.errors import TokenizerError

LOCATION_TOKEN = re.compile(r"^<(loc|seg)\d+>$")  # PaliGemma-style detection/segmentation tokens


class TextTokenizer(Protocol):
    vocab_size: int
    bos_id: int
    eos_id: int
    pad_id: int
    reserved_ids: tuple[int, ...]  # ids web data needs (location tokens): FAST ids must avoid them

    def encode(self, text: str) -> list[int]:
        """Ids of `text`, without BOS/EOS."""
        ...


@dataclass(frozen=True)
class ByteTokenizer:
    """UTF-8 bytes are ids 0..255; then pad, BOS and EOS. Small and dependency-free."""

    pad_id: int = 256
    bos_id: int = 257
    eos_id: int = 258
    vocab_size: int = 259
    reserved_ids: tuple[int, ...] = ()

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """`encode` of each text, as uint8 arrays of its bytes."""
        return [np.frombuffer(text.encode("utf-8"), np.uint8) for text in texts]

    def encode_joined(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The ids of all `texts` end to end (one UTF-8 encode), and how many each text has."""
        joined = "".join(texts).encode("utf-8")
        if joined.isascii():  # one byte per character
            lengths = np.fromiter(map(len, texts), np.int64, len(texts))
        else:
            lengths = np.fromiter((len(t.encode("utf-8")) for t in texts), np.int64, len(texts))
        return np.frombuffer(joined, np.uint8), lengths

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class HFTokenizer:
    """A Hugging Face `tokenizers.Tokenizer` (or a path to its `tokenizer.json`), or a `transformers`
    tokenizer object. BOS/EOS/pad are looked up by the given token strings."""

    def __init__(self, tokenizer: Any, *, bos: str = "<bos>", eos: str = "<eos>", pad: str = "<pad>"):
        if isinstance(tokenizer, (str, Path)):
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer = tokenizer
        self._is_transformers = not hasattr(tokenizer, "token_to_id")
        self.vocab_size = len(tokenizer) if self._is_transformers else tokenizer.get_vocab_size()
        self.bos_id, self.eos_id, self.pad_id = (self._id(t) for t in (bos, eos, pad))
        vocab = (
            tokenizer.get_vocab() if self._is_transformers else tokenizer.get_vocab(with_added_tokens=True)
        )
        self.reserved_ids = tuple(sorted(i for token, i in vocab.items() if LOCATION_TOKEN.match(token)))

    def _id(self, token: str) -> int:
        value = (
            self._tokenizer.convert_tokens_to_ids(token)
            if self._is_transformers
            else self._tokenizer.token_to_id(token)
        )
        if value is None or (
            self._is_transformers and value == getattr(self._tokenizer, "unk_token_id", None)
        ):
            raise TokenizerError(
                f"the text tokenizer has no token {token!r}; pass bos=/eos=/pad= with its special tokens"
            )
        return int(value)

    def encode(self, text: str) -> list[int]:
        if self._is_transformers:
            return list(self._tokenizer.encode(text, add_special_tokens=False))
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """`encode` of each text; one `tokenizers` batch call (a `transformers` tokenizer: per text)."""
        if self._is_transformers:
            return [self.encode(text) for text in texts]
        return [e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]
