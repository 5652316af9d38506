"""The table-lookup FAST decode gives exactly what the BPE tokenizer's own decode gives."""

import copy

import numpy as np
import pytest

from vla_data.errors import TokenizerError
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.symbol_table import SymbolTable, byte_to_unicode


def smooth_chunks(n, horizon, dim, seed=0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, horizon)[None, :, None]
    return 0.8 * np.sin(2 * np.pi * (rng.uniform(0.2, 1.5, (n, 1, dim)) * t + rng.uniform(0, 1, (n, 1, dim))))


def sequences(fast, horizon, dim, seed):
    """Valid sequences, and corruptions of them: cut, doubled, shuffled, random and foreign ids."""
    rng = np.random.default_rng(seed)
    valid = fast.encode(smooth_chunks(60, horizon, dim, seed), on_error="clip")
    vocab = fast.bpe.get_vocab_size()
    bad = [s[: len(s) // 2] for s in valid[:10]] + [s + s[:3] for s in valid[10:20]]
    bad += [list(rng.permutation(s)) for s in valid[20:30]]
    bad += [rng.integers(0, vocab, rng.integers(1, 60)).tolist() for _ in range(200)]
    bad += [[], [vocab], [-1, 3], valid[0][:-1] + [vocab + 5]]
    return valid + bad


def assert_same_as_tokenizer_decode(fast, ids, horizon, dim):
    slow = copy.copy(fast)
    slow._table = None  # forces the tokenizer's own decode for every sequence
    for on_error in ("flag", "relaxed"):
        a, va = fast.decode(ids, horizon=horizon, action_dim=dim, on_error=on_error)
        b, vb = slow.decode(ids, horizon=horizon, action_dim=dim, on_error=on_error)
        np.testing.assert_array_equal(va, vb)
        np.testing.assert_array_equal(a, b)
    assert fast._table is not None  # the fast path was really used


def test_fast_plus_table_decode_matches_tokenizer_decode(shared_data):
    fast = FastTokenizer.from_pretrained(shared_data / "fast_plus")
    assert SymbolTable.of(fast.bpe).byte_level
    for horizon, dim, seed in ((10, 7, 0), (30, 26, 1), (50, 14, 2)):
        ids = sequences(fast, horizon, dim, seed)
        assert_same_as_tokenizer_decode(fast, ids, horizon, dim)
        _, valid = fast.decode(ids, horizon=horizon, action_dim=dim)
        assert valid[:60].all() and not valid[60:].all()


@pytest.mark.parametrize("mode", ["default", "compat"])
def test_fitted_table_decode_matches_tokenizer_decode(mode):
    # scale 100 spreads coefficients over > 128 symbols: multi-byte UTF-8 in compat mode
    fast = FastTokenizer.fit(smooth_chunks(400, 10, 4, seed=3), mode=mode, scale=100, vocab_size=900)
    assert fast.max_token - fast.min_token > 128
    assert_same_as_tokenizer_decode(fast, sequences(fast, 10, 4, seed=4), 10, 4)


def test_byte_level_table_reaches_every_byte_and_rejects_bad_utf8(shared_data):
    assert sorted(byte_to_unicode()) == list(range(256)) and len(set(byte_to_unicode().values())) == 256
    fast = FastTokenizer.from_pretrained(shared_data / "fast_plus")
    table = SymbolTable.of(fast.bpe)
    vocab = fast.bpe.get_vocab()
    char = {b: vocab[c] for b, c in byte_to_unicode().items()}
    cases = {
        "é": ([char[0xC3], char[0xA9]], True),
        "lone continuation": ([char[0x80]], False),
        "truncated 2-byte": ([char[0xC3]], False),
        "overlong": ([char[0xC0], char[0x80]], False),
        "surrogate": ([char[0xED], char[0xA0], char[0x80]], False),
        "3-byte": ([char[0xE0], char[0xA4], char[0x80]], True),
    }
    codes, ok = table.decode([ids for ids, _ in cases.values()], 1)
    assert ok.tolist() == [expected for _, expected in cases.values()]
    assert codes.tolist() == [[0xE9], [0x900]]  # one row per decodable sequence, in order
    # a bad sequence among good ones: the joined stream fails, each is then decoded alone
    mixed = [[char[0x41]], [char[0xC3]], [char[0xC3], char[0xA9]], [char[0x41], char[0x42]], [char[0x42]]]
    codes, ok = table.decode(mixed, 1)
    assert ok.tolist() == [True, False, True, False, True] and codes.ravel().tolist() == [0x41, 0xE9, 0x42]


def test_batches_larger_than_a_block_match_one_by_one_and_name_the_global_index(shared_data):
    fast = FastTokenizer.from_pretrained(shared_data / "fast_plus")
    chunks = smooth_chunks(600, 10, 7, seed=5)  # more than two blocks of 256
    ids = fast.encode(chunks)
    assert [fast.encode(chunks[i])[0] for i in range(0, 600, 37)] == ids[::37]
    ids[400] = ids[400][:-2]  # too short: invalid
    actions, valid = fast.decode(ids, horizon=10, action_dim=7)
    one_by_one = [fast.decode([seq], horizon=10, action_dim=7) for seq in ids]
    np.testing.assert_array_equal(actions, np.concatenate([a for a, _ in one_by_one]))
    assert valid.tolist() == [bool(v[0]) for _, v in one_by_one] and not valid[400] and valid.sum() == 599
    with pytest.raises(TokenizerError, match="sequence 400:"):
        fast.decode(ids, horizon=10, action_dim=7, on_error="raise")
    chunks[300, 0, 0] = 1e6  # far outside the fitted coefficient range
    with pytest.raises(TokenizerError, match="chunk 300:"):
        fast.encode(chunks)
