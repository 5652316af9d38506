"""Adversarial checks of the zero-tail cut (review of stop 19): unknown tokens, the regex engine's
Unicode version against Python's, HF's priority-queue BPE against the rank-by-rank proof on many
small fitted vocabularies, whitespace / apostrophe zero symbols, heads ending in U+001C-U+001F,
equal rows encoded once. Every comparison is against the tokenizer's own `encode` per string."""

import json

import numpy as np
import pytest
from tokenizers import ByteLevelBPETokenizer, Tokenizer, models, pre_tokenizers, trainers

from vla_data.bench.tokenizer import smooth_chunks
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.bpe_batch import SEPARATOR, BpeBatch, bare_copy
from vla_data.tokenizers.zero_tail import ZeroTailEncoder, strings
from vla_data.tokenizers.zero_tail_words import JOINED, UNSAFE, disagreements, python_class


def own(bpe: Tokenizer, rows: np.ndarray) -> list[list[int]]:
    """The reference: the tokenizer's own `encode`, one call per row's string."""
    return [bpe.encode(text).ids for text in strings(rows)]


def tailed(rng, heads: list[list[int]], n: int, zero: int) -> np.ndarray:
    """Rows `[len(heads), n]`: each head, then zeros (runs of every length)."""
    rows = np.full((len(heads), n), zero, np.int64)
    for b, head in enumerate(heads):
        rows[b, : len(head)] = head[:n]
    return rows


@pytest.fixture(scope="module")
def fast_plus(shared_data):
    return FastTokenizer.from_pretrained(shared_data / "fast_plus")


# -- 1: unknown tokens -----------------------------------------------------------------------------
def unk_tokenizer(tmp_path, *, zero_known: bool) -> Tokenizer:
    """A tokenizer.json as a user might load it: fuse_unk with symbol "c" (and maybe the zero "z")
    missing from the vocabulary."""
    vocab = {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "bb": 4}
    merges = [["a", "b"], ["b", "b"]]
    if zero_known:
        vocab.update({"z": 5, "zz": 6, "bz": 7})
        merges += [["z", "z"], ["b", "z"]]
    spec = json.loads(Tokenizer(models.BPE()).to_str())
    spec["model"].update(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    return Tokenizer.from_file(str(path))


def test_fused_unknown_tokens_are_never_cut(tmp_path):
    z, c = ord("z"), ord("c")
    rows = np.array([[ord("a"), c] + [z] * 6, [ord("b")] * 3 + [c] * 2 + [z] * 3, [c] * 8])
    for zero_known in (False, True):
        bpe = unk_tokenizer(tmp_path, zero_known=zero_known)
        whole = own(bpe, rows)
        heads = [bpe.encode(text.rstrip("z")).ids for text in strings(rows)]
        tail = [bpe.encode("z" * k).ids for k in (6, 3, 0)]
        if not zero_known:  # the naive cut is wrong here: the unknown head end and tail fuse
            assert [h + t for h, t in zip(heads, tail, strict=True)] != whole
        assert ZeroTailEncoder.of(bpe, z, z + 1) is None  # "c" (and maybe "z") is unknown
    # every symbol of the alphabet spelled: the unknown token never appears, the cut is used
    spelled = [chr(s) for s in range(z + 1)]
    spec = json.loads(bpe.to_str())
    vocab = spec["model"]["vocab"]
    for ch in spelled:
        vocab.setdefault(ch, len(vocab))
    full = Tokenizer.from_str(json.dumps(spec))
    cut = ZeroTailEncoder.of(full, z, z + 1)
    assert cut is not None
    rng = np.random.default_rng(0)
    rows = tailed(rng, [rng.choice([97, 98, 99, z], rng.integers(0, 8)).tolist() for _ in range(300)], 12, z)
    assert cut.encode(rows) == own(full, rows)


# -- 2: Unicode versions ---------------------------------------------------------------------------
def test_classes_come_from_the_tokenizers_own_regex(fast_plus):
    # Python 3.11 has Unicode 14, the regex engine in `tokenizers` a newer one: letters Python calls
    # unassigned (U+1C89, ...). Over a range well beyond FAST+'s alphabet, every such symbol is
    # refused, and every other symbol's join agrees with the pre-tokenizer itself.
    alphabet = 0x1D00
    disputed = disagreements(fast_plus.bpe, alphabet)
    assert disputed, "no symbol where Python and the regex engine disagree: this test lost its teeth"
    pre = fast_plus.bpe.pre_tokenizer
    for zero in (354, ord("0"), ord("!")):
        cut = ZeroTailEncoder.of(fast_plus.bpe, zero, alphabet)
        assert cut is not None and (cut.joins[disputed] == UNSAFE).all()
        for p in range(alphabet):
            if cut.joins[p] != UNSAFE and p != zero:
                one_word = len(pre.pre_tokenize_str(chr(p) + chr(zero) * 3)) == 1
                assert one_word == (cut.joins[p] == JOINED), (hex(p), zero)
    # rows ending in each disputed symbol: exact (they go to BPE whole)
    cut = ZeroTailEncoder.of(fast_plus.bpe, 354, alphabet)
    rows = tailed(None, [[355, 353, p] for p in disputed], 12, 354)
    assert cut.encode(rows) == own(fast_plus.bpe, rows)


def test_python_and_engine_differ_where_the_old_check_cut_wrongly(fast_plus):
    # The check the cut used to make (Python's category) calls U+1C89 punctuation; the engine joins
    # it with the letter-class zero, so that cut would append the tail without a boundary check.
    disputed = disagreements(fast_plus.bpe, 0x1D00)
    letters = [p for p in disputed if python_class(chr(p)) == "P"]
    pre = fast_plus.bpe.pre_tokenizer
    assert letters and all(len(pre.pre_tokenize_str(chr(p) + "Ţ")) == 1 for p in letters)


# -- 3: priority-queue BPE against the proof, many small vocabularies ------------------------------
SYMBOL_SETS = {
    "letters": "abŢ",
    "mixed": "a0!Ţ'",
    "spaces": "ab \t",
    "digits": "0123",
    "controls": "\x1c\x1d\x1e\x1fa",
}


def trained(texts: list[str], alphabet: str, vocab_size: int, *, byte_level: bool) -> Tokenizer:
    initial = pre_tokenizers.ByteLevel.alphabet() if byte_level else list(alphabet)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False, initial_alphabet=initial
    )
    bpe = ByteLevelBPETokenizer()._tokenizer if byte_level else Tokenizer(models.BPE())
    bpe.train_from_iterator(texts, trainer=trainer)
    return bpe


@pytest.mark.parametrize("byte_level", [False, True], ids=["default", "compat"])
def test_many_small_fitted_vocabularies(byte_level):
    rng = np.random.default_rng(7 + byte_level)
    tried = cut_used = 0
    for trial in range(60):
        name = list(SYMBOL_SETS)[trial % len(SYMBOL_SETS)]
        symbols = [ord(ch) for ch in SYMBOL_SETS[name]]
        weights = rng.dirichlet(np.ones(len(symbols)) * 0.5)
        zero = int(rng.choice(symbols))
        texts = []
        for _ in range(150):  # runs and repeated motifs make long, overlapping merges
            head = rng.choice(symbols, rng.integers(1, 30), p=weights)
            texts.append("".join(map(chr, head)) + chr(zero) * int(rng.integers(0, 40)))
        base = 256 if byte_level else len(symbols)
        bpe = trained(texts, SYMBOL_SETS[name], base + int(rng.integers(3, 60)), byte_level=byte_level)
        cut = ZeroTailEncoder.of(bpe, zero, max(symbols) + 1)
        tried += 1
        if cut is None:  # only a zero that may join a contraction or is non-ASCII whitespace
            assert byte_level and (chr(zero) in "st'" or python_class(chr(zero)) == "W")
            continue
        heads = [rng.choice(symbols, rng.integers(0, 25), p=weights).tolist() for _ in range(200)]
        rows = tailed(rng, heads, 48, zero)
        assert cut.encode(rows) == own(bpe, rows), (name, chr(zero), trial)
        cut_used += bool(cut._tails)
    assert cut_used > tried // 2


@pytest.mark.parametrize("mode", ["default", "compat"])
def test_fast_fitted_with_tight_vocabularies(mode):
    for seed, scale in ((1, 4), (2, 10), (3, 25)):
        chunks = smooth_chunks(400, 10, 7, seed=seed)
        roomy = FastTokenizer.fit(chunks, scale=scale, vocab_size=4096, mode=mode)
        span = roomy.max_token - roomy.min_token  # a vocabulary of the alphabet and ~10-40 merges
        fast = FastTokenizer.fit(chunks, scale=scale, vocab_size=span + 10 * seed, mode=mode)
        assert fast.encode(chunks) == own(fast.bpe, fast.symbols(chunks))
        cut = fast._zero_tail
        if cut is None:  # compat with a whitespace-like zero symbol: the plain path
            assert mode == "compat"
            continue
        rng = np.random.default_rng(seed)
        known = np.flatnonzero(fast._known_symbols())
        near = known[np.abs(known - cut.zero) < 6]  # heads of symbols that merges were made of
        rows = tailed(rng, [rng.choice(near, rng.integers(0, 40)).tolist() for _ in range(300)], 70, cut.zero)
        assert cut.encode(rows) == own(fast.bpe, rows)


# -- 4: whitespace and apostrophe zeros, heads ending in U+001C-U+001F -----------------------------
@pytest.mark.parametrize("zero", [ord(" "), ord("\t"), ord("\n"), ord("'"), 0x1C, 0x1F])
def test_whitespace_apostrophe_and_separator_zeros(fast_plus, zero):
    alphabet = fast_plus.max_token - fast_plus.min_token + 1
    cut = ZeroTailEncoder.of(fast_plus.bpe, zero, alphabet)
    assert cut is not None
    rng = np.random.default_rng(zero)
    ends = [0x1C, 0x1D, 0x1E, 0x1F, ord("'"), ord(" "), ord("s"), ord("t"), ord("0"), 354, 0x85, 0xA0]
    heads = [[*rng.choice(ends, rng.integers(0, 4)).tolist(), e] for e in ends for _ in range(20)]
    rows = tailed(rng, heads, 24, zero)
    assert cut.encode(rows) == own(fast_plus.bpe, rows)
    assert any(cut.joins[e] != UNSAFE for e in (0x1C, 0x1D, 0x1E, 0x1F))  # these are really cut


def test_heads_ending_in_information_separators_are_cut(fast_plus):
    # U+001C-U+001F are whitespace to Python's str.isspace but not to the regex: other class
    pre = fast_plus.bpe.pre_tokenizer
    for zero in (354, ord("!"), ord(" ")):
        cut = ZeroTailEncoder.of(fast_plus.bpe, zero, fast_plus.max_token - fast_plus.min_token + 1)
        for p in range(0x1C, 0x20):
            assert cut.joins[p] != UNSAFE
            assert (cut.joins[p] == JOINED) == (len(pre.pre_tokenize_str(chr(p) + chr(zero))) == 1)
        heads = [[355, p] for p in range(0x1C, 0x20)] + [[0x27, p, p] for p in range(0x1C, 0x20)]
        rows = tailed(None, heads, 9, zero)
        assert cut.encode(rows) == own(fast_plus.bpe, rows)


# -- equal rows, the bare copy ---------------------------------------------------------------------
def test_equal_rows_are_encoded_once_and_not_shared(fast_plus):
    chunks = smooth_chunks(50, 10, 7, seed=3)
    batch = np.concatenate([chunks, chunks[::-1], chunks[:5], np.zeros((4, 10, 7))])
    symbols = fast_plus.symbols(batch)
    ids = fast_plus.encode(batch)
    assert ids == own(fast_plus.bpe, symbols)
    assert len({id(x) for x in ids}) == len(ids)  # a caller may change one row's list
    ids[0].append(-1)
    assert ids[0] != ids[99]


def test_bare_copies_are_the_same_model(fast_plus):
    symbols = fast_plus.symbols(smooth_chunks(200, 30, 26, seed=4), on_error="clip")
    bare = bare_copy(fast_plus.bpe)
    assert bare is not None and bare.get_vocab() == fast_plus.bpe.get_vocab()
    assert [e.ids for e in bare.encode_batch(strings(symbols))] == own(fast_plus.bpe, symbols)
    packed = bare_copy(fast_plus.bpe, words=True, separator=SEPARATOR)
    assert packed.get_vocab_size() == fast_plus.bpe.get_vocab_size() + 1
    assert bare_copy(fast_plus.bpe, words=True, separator="Å") is None  # already a token


@pytest.mark.parametrize("count", [1, 15, 16, 17, 200, 1000])
def test_packed_batches_give_each_strings_own_ids(count):
    fast = FastTokenizer.fit(smooth_chunks(2000, 10, 7, seed=1))  # default mode: no pre-tokenizer
    batch = BpeBatch.of(fast.bpe, words=True)
    assert batch.separator_id == fast.bpe.get_vocab_size()
    rng = np.random.default_rng(count)
    symbols = fast.symbols(smooth_chunks(count, 10, 7, seed=count), on_error="clip")
    texts = [text[: rng.integers(0, 71)] for text in strings(symbols)]  # empty ones too
    texts[::3] = texts[: len(texts[::3])]  # and equal ones
    ids, shared = batch(texts)
    assert ids == [fast.bpe.encode(text).ids for text in texts]
    assert shared == (count > 1)


def test_byte_level_without_regex_is_one_word(fast_plus):
    # ByteLevel(use_regex=False): every head goes over mapped, whatever its characters
    spec = json.loads(fast_plus.bpe.to_str())
    spec["pre_tokenizer"]["use_regex"] = False
    bpe = Tokenizer.from_str(json.dumps(spec))
    cut = ZeroTailEncoder.of(bpe, 354, 2049)
    assert cut is not None and cut._mapped is not None
    rng = np.random.default_rng(5)
    heads = [
        rng.choice([32, 39, 48, 115, 0x1C, 353, 355, 356, 700], rng.integers(0, 12)).tolist()
        for _ in range(300)
    ]
    rows = tailed(rng, heads, 30, 354)
    assert cut.encode(rows) == own(bpe, rows)
