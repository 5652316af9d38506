"""Where GPT-2's regex lets the zero-tail cut through: the word classes of a byte-level tokenizer's
symbols, read from its own pre-tokenizer and cross-checked against Python's Unicode tables.

GPT-2's regex (`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`)
makes words of runs of one class: letters, numbers, or anything else that is not whitespace. Which
class a character is in depends on the Unicode version of the regex engine inside `tokenizers`,
which need not be Python's (Python 3.11 has Unicode 14; the engine knows letters Python calls
unassigned, e.g. U+1C89). So each symbol's class is probed with the pre-tokenizer itself, and a
symbol whose probed class differs from what Python's `unicodedata` says is never cut after.
"""

from __future__ import annotations

import unicodedata

import numpy as np
from tokenizers import Tokenizer

from vla_data.tokenizers.symbol_table import byte_to_unicode

UNSAFE, SEPARATE, JOINED = 0, 1, 2  # the symbol before the tail: no cut / tail is its own word / same word
CONTRACTION_LETTERS = "strvmlde"  # GPT-2's regex: 's 't 're 've 'm 'll 'd
ASCII_WHITESPACE = " \t\n\x0b\x0c\r"  # `\s` in every regex engine
WHITE_CONTROLS = "\t\n\x0b\x0c\r\x85"  # Unicode White_Space outside the Z categories
PROBES = (("a", "L"), ("0", "N"), ("!", "P"))  # a character joins the probe's word iff in its class


def probed_classes(bpe: Tokenizer, alphabet: int) -> list[str]:
    """Per symbol in [0, alphabet): "L", "N" or "P" if the tokenizer's pre-tokenizer keeps it in one
    word with a letter, a digit or a "!" after them, "W" (whitespace) if with none; "?" if with more
    than one or if the character cannot be encoded (a surrogate)."""
    pre = bpe.pre_tokenizer
    classes = []
    for symbol in range(alphabet):
        char = chr(symbol)
        if 0xD800 <= symbol < 0xE000:
            classes.append("?")
            continue
        joined = [cls for probe, cls in PROBES if len(pre.pre_tokenize_str(probe + char)) == 1]
        classes.append(joined[0] if len(joined) == 1 else "W" if not joined else "?")
    return classes


def python_class(char: str) -> str:
    """The class Python's Unicode tables give: "W" for White_Space, else "L", "N" or "P"."""
    category = unicodedata.category(char)
    if category[0] == "Z" or char in WHITE_CONTROLS:
        return "W"
    return category[0] if category[0] in "LN" else "P"


def disagreements(bpe: Tokenizer, alphabet: int) -> list[int]:
    """Symbols in [0, alphabet) whose class under the tokenizer's regex is not Python's."""
    probed = probed_classes(bpe, alphabet)
    return [s for s, cls in enumerate(probed) if cls != python_class(chr(s)) or cls == "?"]


def word_classes(bpe: Tokenizer, alphabet: int) -> np.ndarray:
    """Int8 `[alphabet]`: 1 letter, 2 number, 3 other, under the tokenizer's regex and Python's
    alike; 0 for whitespace and for symbols the two disagree on."""
    codes = {"L": 1, "N": 2, "P": 3}
    probed = probed_classes(bpe, alphabet)
    return np.array(
        [codes.get(cls, 0) if cls == python_class(chr(s)) else 0 for s, cls in enumerate(probed)], np.int8
    )


def byte_level_joins(classes: np.ndarray, zero: int) -> np.ndarray | None:
    """Per symbol `p` that may end the head: how the tail relates to its word under GPT-2's regex,
    from `word_classes`.

    Cut after a non-whitespace `p`, the head alone is split as in `s` (matches that do not touch the
    cut are the same; the last one ends at `p` in both unless the tail continues its run), and the
    tail `z^m` alone is one word (a run of one class; for whitespace, `\\s+(?!\\S)` up to the end of
    the string). In `s` the tail continues `p`'s word iff `p` and `z` are in the same class. UNSAFE:
    whitespace `p`, and `p` whose class the regex engine and Python disagree on. None if `z` could
    take part in a contraction (`'s`, `'re`, ...), is whitespace beyond ASCII, or is disputed."""
    z = chr(zero)
    if z in ASCII_WHITESPACE and python_class(z) == "W":
        tail_class = -1  # no non-whitespace `p` shares it: the tail is always its own word
    elif not classes[zero] or z.lower() in CONTRACTION_LETTERS:
        return None
    else:
        tail_class = int(classes[zero])
    return np.where(classes == 0, UNSAFE, np.where(classes == tail_class, JOINED, SEPARATE)).astype(np.int8)


class ByteLevelText:
    """Strings as the byte-level strings a ByteLevel pre-tokenizer hands to BPE (their UTF-8 bytes
    through GPT-2's byte -> character table): for a string that is one word under the regex, BPE
    of this string without the pre-tokenizer is the tokenizer's own encoding."""

    def __init__(self):
        to_char = byte_to_unicode()
        self.chars = np.array([ord(to_char[b]) for b in range(256)], "<u4")  # byte -> code point

    def __call__(self, texts: list[str]) -> list[str]:
        """Each text (no surrogates) mapped; one UTF-8 encode and one table lookup for the batch."""
        raw = np.frombuffer("".join(texts).encode("utf-8"), np.uint8)
        mapped = self.chars[raw].tobytes().decode("utf-32-le")
        starts = np.append(np.flatnonzero((raw & 0xC0) != 0x80), len(raw))  # [chars + 1] byte offsets
        bounds = starts[np.cumsum([0] + [len(t) for t in texts])].tolist()  # [texts + 1]
        return [mapped[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
