"""The zero-tail cut gives exactly the BPE tokenizer's own ids: FAST+, fitted and reference-fitted
tokenizers, smooth and adversarial rows, every symbol before the tail, other zero symbols."""

import json

import numpy as np
import pytest
from tokenizers import Tokenizer, models

from vla_data.bench.tokenizer import smooth_chunks
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.zero_tail import ZeroTailEncoder, merge_tree, strings

SHAPES = [(10, 7), (30, 26), (50, 14)]
GOLDEN = ["synthetic_10x7", "so101", "g1_humanoid", "lingzu_dual_arm"]


def whole(bpe: Tokenizer, symbols: np.ndarray) -> list[list[int]]:
    """The reference: the tokenizer's own encode of each row's whole string."""
    return [e.ids for e in bpe.encode_batch(strings(symbols))]


def rows_with_tails(rng, count, n, zero, choices):
    """Rows ending in runs of `zero` of every length 0..n, heads of symbols near zero with zero runs
    inside and, now and then, any symbol of `choices` (whitespace, digits, apostrophes, ...)."""
    rows = zero + np.round(rng.normal(0, 3, (count, n))).astype(np.int64)
    rows[rng.random((count, n)) < 0.3] = zero
    wild = rng.random((count, n)) < 0.05
    rows[wild] = rng.choice(choices, wild.sum())
    rows = np.where(np.isin(rows, choices), rows, zero)
    tails = rng.integers(0, n + 1, count)
    rows[np.arange(n) >= (n - tails)[:, None]] = zero
    return rows


@pytest.fixture(scope="module")
def fast_plus(shared_data):
    return FastTokenizer.from_pretrained(shared_data / "fast_plus")


def test_fast_plus_smooth_chunks_are_cut_and_exact(fast_plus):
    for horizon, dim in SHAPES:
        for seed in range(3):
            chunks = smooth_chunks(300, horizon, dim, seed=seed)
            assert fast_plus.encode(chunks) == whole(fast_plus.bpe, fast_plus.symbols(chunks))
    cut = fast_plus._zero_tail
    assert isinstance(cut, ZeroTailEncoder) and cut._tails and cut._compatible  # the cut really ran


@pytest.mark.parametrize("zero", [354, 32, 48, 46, 0x11, 0x2D0])
def test_byte_level_cut_with_any_zero_symbol(fast_plus, zero):
    # FAST+'s BPE with other zero symbols: a letter (its own), space, digit, punctuation, control
    alphabet = fast_plus.max_token - fast_plus.min_token + 1
    cut = ZeroTailEncoder.of(fast_plus.bpe, zero, alphabet)
    assert cut is not None
    rng = np.random.default_rng(zero)
    choices = np.arange(alphabet)
    for n in (70, 780):
        rows = rows_with_tails(rng, 400, n, zero, choices)
        assert cut.encode(rows) == whole(fast_plus.bpe, rows)
    assert cut._tails


@pytest.mark.parametrize("zero", [ord("e"), ord("s"), 0x85, 0xA0])
def test_byte_level_cut_refuses_contraction_letters_and_unicode_whitespace(fast_plus, zero):
    assert ZeroTailEncoder.of(fast_plus.bpe, zero, fast_plus.max_token - fast_plus.min_token + 1) is None


def test_every_symbol_before_the_tail(fast_plus):
    # the regex classes behind the cut, checked against the tokenizer for the whole FAST+ alphabet
    alphabet = fast_plus.max_token - fast_plus.min_token + 1
    rng = np.random.default_rng(0)
    for zero in (354, 32, 48):
        cut = ZeroTailEncoder.of(fast_plus.bpe, zero, alphabet)
        rows = np.full((alphabet, 48), zero)
        rows[:, :6] = zero + rng.integers(-3, 4, (alphabet, 6))
        rows[:, 6] = np.arange(alphabet)  # then 0-41 zeros, or none if this is the zero itself
        assert cut.encode(rows) == whole(fast_plus.bpe, rows)


@pytest.mark.parametrize("mode", ["default", "compat"])
def test_fitted_tokenizers_smooth_and_adversarial_rows(mode):
    rng = np.random.default_rng(1)
    for horizon, dim in SHAPES:
        fast = FastTokenizer.fit(smooth_chunks(2000, horizon, dim, seed=1), mode=mode)
        chunks = smooth_chunks(500, horizon, dim, seed=2)
        assert fast.encode(chunks, on_error="clip") == whole(fast.bpe, fast.symbols(chunks, on_error="clip"))
        cut = fast._zero_tail
        if cut is None:  # compat with a whitespace-like zero symbol: the plain path, still exact
            assert mode == "compat"
            continue
        rows = rows_with_tails(rng, 500, horizon * dim, cut.zero, np.flatnonzero(fast._known_symbols()))
        assert cut.encode(rows) == whole(fast.bpe, rows)


def test_recut_moves_the_cut_before_the_last_head_token():
    # this fitted vocabulary has tokens reaching from the last non-zero coefficient into the zero
    # run, so the first cut is often not provably exact; the recut then keeps it
    fast = FastTokenizer.fit(smooth_chunks(2000, 10, 7, seed=1))
    chunks = smooth_chunks(2000, 10, 7, seed=10)
    assert fast.encode(chunks, on_error="clip") == whole(fast.bpe, fast.symbols(chunks, on_error="clip"))
    assert any(left >= 0 for left, _ in fast._zero_tail._tails)


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_reference_tokenizers_use_the_cut(shared_data, fast_plus, name):
    folder = shared_data / "fast_golden" / name
    chunks = np.load(folder / "chunks.npy")
    reference_fit = FastTokenizer.from_pretrained(folder / "ref_fit")
    assert reference_fit.encode(chunks) == json.loads((folder / "ref_fit_ids.json").read_text())
    assert fast_plus.encode(chunks) == json.loads((folder / "fastplus_ids.json").read_text())
    assert isinstance(reference_fit._zero_tail, ZeroTailEncoder) and reference_fit._zero_tail._tails


def test_edge_rows(fast_plus):
    cut = fast_plus._zero_tail or ZeroTailEncoder.of(fast_plus.bpe, 354, 2049)
    rows = np.array([[354] * 20, [355] * 20, [355] + [354] * 19, [354] * 19 + [355]])
    assert cut.encode(rows) == whole(fast_plus.bpe, rows)
    assert cut.encode(rows[:0]) == [] and cut.encode(np.zeros((2, 0), np.int64)) == [[], []]


def test_only_rank_ordered_plain_bpe_is_cut():
    vocab = {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5}

    def spec(merges):
        return json.loads(Tokenizer(models.BPE(vocab, merges)).to_str())["model"]

    assert merge_tree(spec([("a", "b"), ("ab", "c")])) == {3: (0, 1), 5: (3, 2)}
    assert merge_tree(spec([("ab", "c"), ("a", "b")])) is None  # an operand made by a later merge
    assert merge_tree(spec([("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")])) is None  # abc made twice
    plain = Tokenizer(models.BPE(vocab, [("a", "b"), ("ab", "c")]))
    c = ord("c")
    assert ZeroTailEncoder.of(plain, c, c + 1) is not None
    assert ZeroTailEncoder.of(Tokenizer(models.BPE(vocab, [("a", "b")], dropout=0.5)), c, c + 1) is None
    assert ZeroTailEncoder.of(plain, c + 1, c + 1) is None  # the zero symbol must be in the alphabet
    assert ZeroTailEncoder.of(plain, c + 1, c + 2) is None  # ... and in the vocabulary
