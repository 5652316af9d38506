"""Robot prompt formats: openpi's pi0-FAST and pi0.5 token for token, and our own `vla_data` layout.

Golden values are read off Physical-Intelligence/openpi, src/openpi/models/tokenizer.py (commit
15a9616):
- `FASTTokenizer.tokenize` (pi0-FAST): `cleaned_text = prompt.lower().strip().replace("_", " ")`;
  `prefix = f"Task: {cleaned_text}, State: {state_str};\\n"` encoded with `add_bos=True`;
  `postfix = encode("Action: ") + FAST ids + encode("|", add_eos=True)`; `ar_mask` 0 on the prefix and
  1 on the postfix; `loss_mask` True on the whole postfix ("Action: " included); FAST ids map to
  `vocab_size() - 1 - 128 - id` (`_act_tokens_to_paligemma_tokens`).
- `PaligemmaTokenizer.tokenize` with a state (pi0.5, "This is the Pi05 format"):
  `cleaned_text = prompt.strip().replace("_", " ").replace("\\n", " ")` (no lowercasing);
  `full_prompt = f"Task: {cleaned_text}, State: {state_str};\\nAction: "` encoded in one call with
  `add_bos=True`; pi0.py `embed_prefix` gives every prompt token `ar_mask` False (bidirectional).
- both: `discretized_state = np.digitize(state, bins=np.linspace(-1, 1, 256 + 1)[:-1]) - 1`,
  `state_str = " ".join(map(str, discretized_state))`.
"""

import numpy as np
import pytest

from vla_data.errors import VlaDataError
from vla_data.tokenizers.prompt import PromptBuilder, robot_text
from vla_data.tokenizers.text import ByteTokenizer

TASK = "  Put_the Cup\nin the sink "
STATE = np.array([-1.0, 0.0, 0.999, 1.0, -1.5, 0.5])  # bins 0, 128, 255, 255, -1, 192
FAST_IDS = np.array([0, 5, 299])
BOS, EOS = 257, 258  # the byte tokenizer: token id == byte value, then pad/bos/eos


def builder(fmt, **kw):
    return PromptBuilder(ByteTokenizer(), fast_vocab_size=300, mapping="append", prompt_format=fmt, **kw)


def test_openpi_pi0_fast_format():
    # FASTTokenizer.tokenize: lower() then strip(), "_" -> " ", the newline stays
    prefix_text = "Task: put the cup\nin the sink, State: 0 128 255 255 -1 192;\n"
    assert robot_text(TASK, STATE, "pi0fast") == (prefix_text, "Action: ")
    sample = builder("pi0fast").robot(TASK, STATE, FAST_IDS)
    prefix = [BOS, *prefix_text.encode()]
    postfix = [*b"Action: ", 259, 264, 558, *b"|", EOS]  # encode("|", add_eos=True)
    assert sample.tokens.tolist() == prefix + postfix
    assert sample.ar.tolist() == [False] * len(prefix) + [True] * len(postfix)
    assert sample.loss.tolist() == [False] * len(prefix) + [True] * len(postfix)  # "Action: " too
    assert np.flatnonzero(sample.fast).tolist() == [len(prefix) + 8, len(prefix) + 9, len(prefix) + 10]


def test_openpi_pi05_format():
    # PaligemmaTokenizer.tokenize(prompt, state): case kept, newline -> space, "Action: " in the prefix
    prefix_text = "Task: Put the Cup in the sink, State: 0 128 255 255 -1 192;\nAction: "
    assert robot_text(TASK, STATE, "pi05") == (prefix_text, "")
    sample = builder("pi05").robot(TASK, STATE, FAST_IDS)
    prefix = [BOS, *prefix_text.encode()]
    postfix = [259, 264, 558, *b"|", EOS]
    assert sample.tokens.tolist() == prefix + postfix
    assert sample.ar.tolist() == [False] * len(prefix) + [True] * len(postfix)
    assert sample.loss.tolist() == [False] * len(prefix) + [True] * len(postfix)
    assert np.flatnonzero(sample.fast).tolist() == [len(prefix), len(prefix) + 1, len(prefix) + 2]


def test_vla_data_format_is_kept_as_documented():
    sample = builder("vla_data").robot(TASK, STATE, FAST_IDS)
    prefix = [BOS, *b"Task: put the cup in the sink, State: 0 128 255 255 -1 192;\n"]
    assert sample.tokens.tolist() == prefix + [*b"Action: ", 259, 264, 558, *b"|", EOS]
    assert sample.loss.tolist() == [False] * (len(prefix) + 8) + [True] * 5  # no loss on "Action: "
    cased = builder("vla_data", lowercase=False).robot(TASK, None, FAST_IDS)
    assert bytes(cased.tokens[1:22].tolist()) == b"Task: Put the Cup in "


def test_openpi_formats_need_the_state_and_known_names():
    with pytest.raises(VlaDataError, match="always puts the state in the prompt"):
        builder("pi05", state_in_prompt=False)
    with pytest.raises(VlaDataError, match="prompt_format must be one of vla_data, pi0fast, pi05"):
        builder("pi0")


def test_prompt_format_reaches_the_loader(demo_hdf5, tmp_path):
    from vla_data.convert import convert
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.loader.config_check import ConfigError
    from vla_data.sources.hdf5 import HDF5Source
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", task="Put the Cup\nin the sink"), tmp_path / "r")
    chunks = sample_chunks([tmp_path / "r"], ChunkSpec(horizon=10))
    FastTokenizer.fit(chunks.values, vocab_size=300).save_pretrained(tmp_path / "fast")
    base = dict(
        sources=(SourceConfig("robot", (str(tmp_path / "r"),)),),
        fast_tokenizer=str(tmp_path / "fast"),
        batch_size=2,
        horizon=10,
        action_dim=16,
        image_size=(16, 16),
    )
    starts = {
        "pi0fast": b"Task: put the cup\nin the sink, State: ",
        "pi05": b"Task: Put the Cup in the sink, State: ",
        "vla_data": b"Task: put the cup in the sink, State: ",
    }
    for fmt, start in starts.items():
        batch = next(iter(make_loader(LoaderConfig(**base, prompt_format=fmt))))
        tokens = batch["tokens"][0].tolist()
        assert tokens[0] == BOS and bytes(tokens[1 : 1 + len(start)]) == start, fmt
    with pytest.raises(ConfigError, match="state_in_prompt"):
        LoaderConfig(**base, prompt_format="pi05", state_in_prompt=False)
