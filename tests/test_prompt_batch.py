"""Robot prompts built for a whole batch at once (`PromptBuilder.robot_batch`: cached task parts, all
prefixes encoded in one call, rows joined without a per-row loop) equal the token sequences written
here from the documented format strings, one sample at a time."""

import numpy as np
import pytest

from vla_data.tokenizers.prompt import PromptBuilder
from vla_data.tokenizers.text import ByteTokenizer, HFTokenizer
from vla_data.tokenizers.token_rows import join_rows

TASKS = ["  Pick_up the\nCube ", "stack the blocks", "Größe_ändern: «café»", "Pick_up the\nCube ", "x"]
EDGES = np.linspace(-1, 1, 257)[:-1]


def states(n: int, dims: int = 6) -> np.ndarray:
    rng = np.random.default_rng(n)
    values = rng.uniform(-1.3, 1.3, (n, dims))
    values[0, :4] = [-1.0, 1.0, np.nan, 0.999]  # bins 0, 255, 255 (NaN), 255
    values[-1, -2:] = [-7.0, 1e9]  # bins -1, 255
    return values


def expected_row(builder: PromptBuilder, task: str, state, fast: np.ndarray) -> tuple[list[int], list[int]]:
    """(ids, bounds) of one sample from the format strings of prompt.py's module doc."""
    fmt, text = builder.prompt_format, builder.text
    if fmt == "pi0fast":
        cleaned = task.lower().strip().replace("_", " ")
    else:
        cleaned = task.strip().replace("_", " ").replace("\n", " ")
        if fmt == "vla_data" and builder.lowercase:
            cleaned = cleaned.lower()
    if state is None:
        prefix, opener = f"Task: {cleaned};\n", "Action: "
    else:
        state_text = " ".join(str(b) for b in np.digitize(state, EDGES) - 1)
        prefix = f"Task: {cleaned}, State: {state_text};\n"
        opener = "" if fmt == "pi05" else "Action: "
        prefix += "Action: " if fmt == "pi05" else ""
    head = [text.bos_id, *text.encode(prefix)]
    word = list(text.encode(opener)) if opener else []
    mapped = (text.vocab_size + fast).tolist()
    ids = head + word + mapped + [*text.encode("|"), text.eos_id]
    loss = len(head) if fmt == "pi0fast" else len(head) + len(word)
    return ids, [len(head), loss, len(head) + len(word), len(head) + len(word) + len(fast)]


def byte_level_bpe(tmp_path) -> HFTokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    corpus = [f"Task: {t.lower()}, State: 12 128 255 -1;\nAction: |" for t in TASKS] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    return HFTokenizer(tmp_path / "tokenizer.json")


@pytest.mark.parametrize(
    "settings",
    [
        dict(prompt_format="vla_data"),
        dict(prompt_format="vla_data", lowercase=False),
        dict(prompt_format="vla_data", state_in_prompt=False),
        dict(prompt_format="pi0fast"),
        dict(prompt_format="pi05"),
    ],
    ids=["vla_data", "cased", "no-state", "pi0fast", "pi05"],
)
@pytest.mark.parametrize("tokenizer", ["byte", "bpe"])
def test_batch_rows_equal_the_format_strings_encoded(settings, tokenizer, tmp_path):
    text = ByteTokenizer() if tokenizer == "byte" else byte_level_bpe(tmp_path)
    builder = PromptBuilder(text, fast_vocab_size=300, mapping="append", **settings)
    if tokenizer == "bpe":  # merges across the boundaries of task, state and tail
        assert len(text.encode("Task: stack the blocks, State: ")) < len("Task: stack the blocks, State: ")
    n = len(TASKS)
    fast = [np.arange(k, dtype=np.int64) * 7 % 300 for k in (3, 0, 11, 5, 1)]  # one chunk without ids
    values = states(n)
    layout = builder.robot_batch(TASKS, values, fast)
    assert layout.ids.shape == (n, layout.lengths.max())
    with_state = builder.state_in_prompt
    for i in range(n):
        ids, bounds = expected_row(builder, TASKS[i], values[i] if with_state else None, fast[i])
        assert layout.ids[i, : layout.lengths[i]].tolist() == ids, i
        assert (layout.ids[i, layout.lengths[i] :] == text.pad_id).all()
        assert layout.bounds[i].tolist() == bounds, i
        one = builder.robot(TASKS[i], values[i], fast[i])  # the per-sample path: the same tokens
        assert one.tokens.tolist() == ids
        assert np.flatnonzero(one.fast).tolist() == list(range(bounds[2], bounds[3]))


def test_join_rows_by_hand():
    rows, starts = join_rows(
        [np.array([7]), (np.array([1, 2, 3]), np.array([2, 0, 1])), np.array([8, 9])], n=3, pad=-1
    )
    assert rows.tolist() == [[7, 1, 2, 8, 9], [7, 8, 9, -1, -1], [7, 3, 8, 9, -1]]
    assert starts.tolist() == [[0, 1, 3, 5], [0, 1, 1, 3], [0, 1, 2, 4]]
    empty, none = join_rows([np.array([7])], n=0, pad=0)
    assert empty.shape == (0, 0) and none.shape == (0, 2)


def test_task_parts_cache_stays_bounded_and_right():
    builder = PromptBuilder(ByteTokenizer(), fast_vocab_size=300, mapping="append")
    tasks = [f"Task_{i}" for i in range(4200)]
    layout = builder.robot_batch(tasks, None, [np.zeros(0, np.int64)] * len(tasks))
    assert len(builder._parts_cache) <= 4096
    last = layout.ids[-1, : layout.lengths[-1]].tolist()
    assert last == expected_row(builder, tasks[-1], None, np.zeros(0, np.int64))[0]
    again = builder.robot_batch(tasks[:2], None, [np.zeros(0, np.int64)] * 2)
    assert again.ids[1, : again.lengths[1]].tolist() == layout.ids[1, : layout.lengths[1]].tolist()
