"""Prompt strings and token layouts of robot and web samples (openpi's pi0-FAST format).

Robot:  BOS "Task: {task}, State: {s_0 s_1 ...};\\n" | "Action: " FAST ids "|" EOS
Web:    BOS {prompt}                                | {answer} EOS
The bar separates the prefix (bidirectional, no loss) from the postfix (causal). Loss falls on
FAST ids + "|" + EOS for robot samples and on the answer + EOS for web samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from vla_data.errors import VlaDataError
from vla_data.tokenizers.text import TextTokenizer

FastMapping = Literal["tail", "append"]


def clean_task(task: str, *, lowercase: bool = True) -> str:
    """strip, `_` -> space, newline -> space (and lowercase, as openpi's pi0-FAST does)."""
    text = task.strip().replace("_", " ").replace("\n", " ")
    return text.lower() if lowercase else text


def discretize_state(state: np.ndarray) -> np.ndarray:
    """256 bins over [-1, 1]: `np.digitize(state, np.linspace(-1, 1, 257)[:-1]) - 1`.

    Values below -1 land in bin -1, values at or above 1 in 255, NaN in 255 (numpy's digitize
    puts NaN past the last edge); callers normalize state first.
    """
    return np.digitize(np.asarray(state, np.float64), bins=np.linspace(-1, 1, 256 + 1)[:-1]) - 1


def robot_prefix(task: str, state: np.ndarray | None, *, lowercase: bool = True) -> str:
    cleaned = clean_task(task, lowercase=lowercase)
    if state is None:
        return f"Task: {cleaned};\n"
    return f"Task: {cleaned}, State: {' '.join(map(str, discretize_state(state)))};\n"


@dataclass(frozen=True)
class SampleTokens:
    """One sample's unpadded token layout."""

    tokens: np.ndarray  # [n] int64
    ar: np.ndarray  # [n] bool: False prefix, True postfix
    loss: np.ndarray  # [n] bool
    fast: np.ndarray  # [n] bool: FAST action tokens


@dataclass(frozen=True)
class PromptBuilder:
    """Builds token layouts; FAST ids map into the text vocabulary by `tail` (openpi:
    `vocab_size - 1 - skip - id`) or `append` (`vocab_size + id`, new embedding rows)."""

    text: TextTokenizer
    fast_vocab_size: int
    mapping: FastMapping = "tail"
    skip: int = 128
    state_in_prompt: bool = True
    lowercase: bool = True

    def __post_init__(self) -> None:
        if self.mapping not in ("tail", "append"):
            raise VlaDataError(f"FAST mapping must be 'tail' or 'append', got {self.mapping!r}")
        if self.mapping == "append" or not self.fast_vocab_size:
            return
        highest = self.text.vocab_size - 1 - self.skip
        lowest = highest - (self.fast_vocab_size - 1)
        special = max(self.text.bos_id, self.text.eos_id, self.text.pad_id, 255)
        if lowest <= special:
            raise VlaDataError(
                f"tail mapping puts FAST ids at {lowest}..{highest}, overlapping the text vocabulary "
                f"({self.text.vocab_size} ids); use mapping='append' or a larger text vocabulary"
            )
        clash = [i for i in getattr(self.text, "reserved_ids", ()) if lowest <= i <= highest]
        if clash:
            raise VlaDataError(
                f"tail mapping puts FAST ids at {lowest}..{highest}, over {len(clash)} location/segmentation tokens "
                f"(ids {clash[0]}..{clash[-1]}) that web detection data needs; set fast_skip >= "
                f"{self.text.vocab_size - min(clash)} or use mapping='append'"
            )

    def fast_to_text_ids(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        if self.mapping == "tail":
            return self.text.vocab_size - 1 - self.skip - ids
        return self.text.vocab_size + ids

    @property
    def total_vocab_size(self) -> int:
        """Embedding rows a model needs (append adds the FAST vocabulary after the text one)."""
        return self.text.vocab_size + (self.fast_vocab_size if self.mapping == "append" else 0)

    def robot(self, task: str, state: np.ndarray | None, fast_ids: np.ndarray) -> SampleTokens:
        prefix = [
            self.text.bos_id,
            *self.text.encode(
                robot_prefix(task, state if self.state_in_prompt else None, lowercase=self.lowercase)
            ),
        ]
        action_word = self.text.encode("Action: ")
        fast = self.fast_to_text_ids(fast_ids).tolist()
        tail = [*self.text.encode("|"), self.text.eos_id]
        tokens = prefix + action_word + fast + tail
        n_prefix, n_word, n_fast = len(prefix), len(action_word), len(fast)
        ar = np.arange(len(tokens)) >= n_prefix
        loss = np.arange(len(tokens)) >= n_prefix + n_word
        fast_mask = (np.arange(len(tokens)) >= n_prefix + n_word) & (
            np.arange(len(tokens)) < n_prefix + n_word + n_fast
        )
        return SampleTokens(np.asarray(tokens, np.int64), ar, loss, fast_mask)

    def web(self, prompt: str, answer: str) -> SampleTokens:
        prefix = [self.text.bos_id, *self.text.encode(prompt)]
        postfix = [*self.text.encode(answer), self.text.eos_id]
        tokens = prefix + postfix
        ar = np.arange(len(tokens)) >= len(prefix)
        return SampleTokens(np.asarray(tokens, np.int64), ar, ar.copy(), np.zeros(len(tokens), bool))
