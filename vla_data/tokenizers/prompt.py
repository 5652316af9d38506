"""Prompt strings and token layouts of robot and web samples.

Robot samples come in three formats (`prompt_format`); "|" below separates the prefix
(bidirectional, no loss) from the postfix (causal):

  vla_data (ours): BOS "Task: {task}, State: {s_0 s_1 ...};\n" | "Action: " FAST "|" EOS
                   task: strip, `_` -> space, newline -> space, lowercase optional; loss on FAST "|" EOS
  pi0fast (openpi): BOS "Task: {task}, State: {...};\n" | "Action: " FAST "|" EOS
                   task: lowercase, strip, `_` -> space, newlines KEPT; loss on the whole postfix
                   ("Action: " included)
  pi05 (openpi):   BOS "Task: {task}, State: {...};\nAction: " | FAST "|" EOS
                   task: strip, `_` -> space, newline -> space, case KEPT; the prefix is one string
                   encoded in one call; loss on FAST "|" EOS

openpi sources (Physical-Intelligence/openpi, src/openpi/models/tokenizer.py): `FASTTokenizer.tokenize`
for pi0fast, `PaligemmaTokenizer.tokenize` with a state (the pi0.5 format, used by `TokenizePrompt`
with `discrete_state_input`, which `Pi0Config` turns on when `pi05`) for pi05. openpi's pi0.5 has no
discrete action postfix; ours is pi0-FAST's (FAST ids, "|", EOS) after the prefix that already ends
in "Action: ", which is what pi0.5 + knowledge insulation trains on.
Web:  BOS {prompt} | {answer} EOS, loss on the answer + EOS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from vla_data.errors import VlaDataError
from vla_data.tokenizers.text import TextTokenizer
from vla_data.tokenizers.token_rows import join_rows

FastMapping = Literal["tail", "append"]
PromptFormat = Literal["vla_data", "pi0fast", "pi05"]
PROMPT_FORMATS = ("vla_data", "pi0fast", "pi05")


def clean_task(task: str, *, lowercase: bool = True) -> str:
    """Our format: strip, `_` -> space, newline -> space, lowercase optional."""
    text = task.strip().replace("_", " ").replace("\n", " ")
    return text.lower() if lowercase else text


def clean_task_pi0fast(task: str) -> str:
    """openpi `FASTTokenizer.tokenize`: `prompt.lower().strip().replace("_", " ")` (newlines kept)."""
    return task.lower().strip().replace("_", " ")


def clean_task_pi05(task: str) -> str:
    """openpi `PaligemmaTokenizer.tokenize`: `prompt.strip().replace("_", " ").replace("\n", " ")`."""
    return task.strip().replace("_", " ").replace("\n", " ")


def discretize_state(state: np.ndarray) -> np.ndarray:
    """256 bins over [-1, 1]: `np.digitize(state, np.linspace(-1, 1, 257)[:-1]) - 1`.

    Values below -1 land in bin -1, values at or above 1 in 255, NaN in 255 (numpy's digitize
    puts NaN past the last edge); callers normalize state first.
    """
    # np.digitize's own computation for increasing bins, without its per-call monotonicity check
    return np.searchsorted(_EDGES, np.asarray(state, np.float64), side="right") - 1


_EDGES = np.linspace(-1, 1, 256 + 1)[:-1]


def _state_text(state: np.ndarray) -> str:
    return state_texts(np.asarray(state)[None])[0]


def state_texts(states: np.ndarray) -> list[str]:
    """The prompt text of each discretized state row of `[n, S]`, in one `discretize_state` call."""
    bins = (discretize_state(states) + 1).tolist()  # 0..256: index into the bins' texts
    return [" ".join(map(_BIN_TEXT.__getitem__, row)) for row in bins]


_BIN_TEXT = [str(b) for b in range(-1, 256)]  # the texts of bins -1..255


def robot_prefix(task: str, state: np.ndarray | None, *, lowercase: bool = True) -> str:
    """The prefix text of our `vla_data` format."""
    return format_robot_text(
        task, None if state is None else _state_text(state), "vla_data", lowercase=lowercase
    )[0]


def robot_text(
    task: str, state: np.ndarray | None, fmt: PromptFormat, *, lowercase: bool = True
) -> tuple[str, str]:
    """(prefix text, the text that opens the postfix) of a robot sample; FAST ids, "|" and EOS follow."""
    return format_robot_text(task, None if state is None else _state_text(state), fmt, lowercase=lowercase)


def format_robot_text(
    task: str, state_text: str | None, fmt: PromptFormat, *, lowercase: bool = True
) -> tuple[str, str]:
    """`robot_text` from the state's text (`state_texts`): (prefix text, postfix opener)."""
    head, tail, opener = prompt_parts(task, fmt, with_state=state_text is not None, lowercase=lowercase)
    return head + (state_text or "") + tail, opener


def prompt_parts(
    task: str, fmt: PromptFormat, *, with_state: bool, lowercase: bool = True
) -> tuple[str, str, str]:
    """(head, tail, postfix opener) of a robot prompt: its prefix text is head + the state's text
    (`state_texts`; none without state) + tail."""
    if fmt == "vla_data":
        cleaned = clean_task(task, lowercase=lowercase)
        return (
            (f"Task: {cleaned}, State: ", ";\n", "Action: ")
            if with_state
            else (f"Task: {cleaned};\n", "", "Action: ")
        )
    if not with_state:
        raise VlaDataError(
            f"prompt_format {fmt!r} (openpi) always puts the state in the prompt; set state_in_prompt"
        )
    if fmt == "pi0fast":
        return f"Task: {clean_task_pi0fast(task)}, State: ", ";\n", "Action: "
    if fmt == "pi05":
        return f"Task: {clean_task_pi05(task)}, State: ", ";\nAction: ", ""
    raise VlaDataError(f"prompt_format must be one of {', '.join(PROMPT_FORMATS)}, got {fmt!r}")


@dataclass(frozen=True)
class SampleTokens:
    """One sample's unpadded token layout."""

    tokens: np.ndarray  # [n] int64
    ar: np.ndarray  # [n] bool: False prefix, True postfix
    loss: np.ndarray  # [n] bool
    fast: np.ndarray  # [n] bool: FAST action tokens


@dataclass(frozen=True)
class RobotTokens:
    """The token layouts of n robot samples as rows: sample i is `ids[i, :lengths[i]]`, padded
    after with the text tokenizer's pad id. `bounds` `[n, 4]` per sample: where the prefix ends
    (AR mask from there), where the loss starts, where the FAST ids start and end; AR and loss run
    to the sample's end."""

    ids: np.ndarray  # [n, max n_i] int64
    lengths: np.ndarray  # [n] int64
    bounds: np.ndarray  # [n, 4] int64


@dataclass(frozen=True)
class PromptBuilder:
    """Builds token layouts; FAST ids map into the text vocabulary by `tail` (openpi:
    `vocab_size - 1 - skip - id`) or `append` (`vocab_size + id`, new embedding rows)."""

    text: TextTokenizer
    fast_vocab_size: int
    mapping: FastMapping = "tail"
    skip: int = 128
    state_in_prompt: bool = True
    lowercase: bool = True  # vla_data format only: openpi's formats fix the case (see the module doc)
    prompt_format: PromptFormat = "vla_data"
    # per task: its prompt parts (bounded, `_parts`)
    _parts_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mapping not in ("tail", "append"):
            raise VlaDataError(f"FAST mapping must be 'tail' or 'append', got {self.mapping!r}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise VlaDataError(
                f"prompt_format must be one of {', '.join(PROMPT_FORMATS)}, got {self.prompt_format!r}"
            )
        if self.prompt_format != "vla_data" and not self.state_in_prompt:
            raise VlaDataError(
                f"prompt_format {self.prompt_format!r} (openpi) always puts the state in the prompt; "
                "set state_in_prompt=True or use prompt_format='vla_data'"
            )
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
                f"{self.text.vocab_size - min(self.text.reserved_ids)} or use mapping='append'"
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
        states = None if state is None else np.asarray(state)[None]
        layout = self.robot_batch([task], states, [fast_ids])
        ids = layout.ids[0, : layout.lengths[0]]
        position = np.arange(len(ids))
        prefix, loss, fast_start, fast_end = layout.bounds[0].tolist()
        return SampleTokens(
            ids, position >= prefix, position >= loss, (position >= fast_start) & (position < fast_end)
        )

    def robot_batch(
        self, tasks: list[str], states: np.ndarray | None, fast_ids: list[np.ndarray]
    ) -> RobotTokens:
        """The token layouts of n robot samples (`states` `[n, S]` normalized, or None), built
        together: the prefix texts from each task's parts (cached per task) and the states' texts,
        encoded in one call (`encode_flat`), each whole as openpi does; then BOS, prefix, postfix
        opener, FAST ids, "|" and EOS joined into rows at once (`join_rows`)."""
        n = len(tasks)
        with_state = self.state_in_prompt and states is not None
        parts = [self._parts(task, with_state) for task in tasks]  # (head, tail, opener) each
        opener, tail = (parts[0][2], parts[0][1]) if n else ("", "")  # fixed by the format
        texts = state_texts(states) if with_state else [""] * n
        prefix = encode_flat(self.text, [h + s + t for (h, t, _), s in zip(parts, texts, strict=True)])
        fast = self.fast_to_text_ids(_join(fast_ids, np.int64))
        ids, starts = join_rows(
            [
                np.array([self.text.bos_id]),
                prefix,
                np.asarray(self.text.encode(opener) if opener else [], np.int64),
                (fast, np.fromiter(map(len, fast_ids), np.int64, n)),
                np.asarray([*self.text.encode("|"), self.text.eos_id], np.int64),
            ],
            n,
            self.text.pad_id,
        )
        n_prefix, fast_start, fast_end = starts[:, -4], starts[:, -3], starts[:, -2]
        # openpi's pi0-FAST puts loss on its whole postfix, "Action: " included; ours starts at FAST
        loss = n_prefix if self.prompt_format == "pi0fast" else fast_start
        return RobotTokens(ids, starts[:, -1], np.stack([n_prefix, loss, fast_start, fast_end], axis=1))

    def _parts(self, task: str, with_state: bool) -> tuple:
        """`prompt_parts` of a task, cached (at most 4096 tasks)."""
        key = (task, with_state)
        parts = self._parts_cache.get(key)
        if parts is None:
            if len(self._parts_cache) >= 4096:
                self._parts_cache.clear()
            head, tail, opener = prompt_parts(
                task, self.prompt_format, with_state=with_state, lowercase=self.lowercase
            )
            parts = self._parts_cache[key] = (head, tail, opener)
        return parts

    def web(self, prompt: str, answer: str) -> SampleTokens:
        prefix = [self.text.bos_id, *self.text.encode(prompt)]
        postfix = [*self.text.encode(answer), self.text.eos_id]
        tokens = prefix + postfix
        ar = np.arange(len(tokens)) >= len(prefix)
        return SampleTokens(np.asarray(tokens, np.int64), ar, ar.copy(), np.zeros(len(tokens), bool))


def encode_flat(text: TextTokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The ids of all `texts` end to end, and how many each text has: in one call when the
    tokenizer has `encode_joined` (the byte tokenizer), else through `encode_batch`."""
    joined = getattr(text, "encode_joined", None)
    if joined is not None:
        return joined(texts)
    encoded = encode_batch(text, texts)
    return _join(encoded, np.int64), np.fromiter(map(len, encoded), np.int64, len(texts))


def encode_batch(text: TextTokenizer, texts: list[str]) -> list[np.ndarray]:
    """Ids `[n_i]` of each text (any integer dtype): one `encode_batch` call when the tokenizer
    has one (the same ids as `encode` per text), else `encode` per text."""
    batch = getattr(text, "encode_batch", None)
    encoded = batch(texts) if batch is not None else [text.encode(t) for t in texts]
    return [ids if isinstance(ids, np.ndarray) else np.asarray(ids, np.int64) for ids in encoded]


def _join(arrays: list, dtype) -> np.ndarray:
    """The arrays (or id lists) end to end, as one `dtype` array."""
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)
