"""FAST action tokenizer (Pertsch et al. 2025): DCT over time, scale and round, BPE.

Encode a normalized chunk `a` `[T, D]`:
    c = dct(a, type 2, axis time, ortho) * scale, rounded half to even     # [T, D] ints
    symbols = c.flatten() - min_token        # all D coefficients of frequency 0, then 1, ...
    ids = BPE(''.join(map(chr, symbols)))
Decode reverses it with T and D given explicitly.

Two modes share the save format (the Hugging Face `UniversalActionProcessor` layout):
- `compat`: the reference exactly (byte-level BPE with the GPT-2 regex): same vocab, merges, ids.
- `default`: BPE straight over coefficient symbols, one pre-token per chunk. The byte-level
  detour spends two bytes on every symbol >= 128 and the regex splits chunks into pieces that merges
  cannot cross, so `default` needs fewer tokens for identical reconstructions.

Unlike the reference, failures are never silent: `decode` returns a validity flag per sequence
(wrong length, invalid UTF-8, ids outside the vocabulary, coefficients outside the fitted range,
actions beyond `action_bound`), and `encode` refuses coefficients outside the fitted range unless
asked to clip them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.fft import dct, idct
from tokenizers import Tokenizer, decoders, models, trainers

from vla_data.errors import TokenizerError
from vla_data.tokenizers.fast_decode import CoefficientReader
from vla_data.tokenizers.symbol_table import SymbolTable, byte_to_unicode
from vla_data.tokenizers.zero_tail import ZeroTailEncoder, strings

Mode = Literal["default", "compat"]
DecodeErrors = Literal["flag", "raise", "relaxed"]
EncodeErrors = Literal["raise", "clip"]

PROCESSOR_CONFIG = "processor_config.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
EXTRA_CONFIG = "vla_data_fast.json"  # mode and exact range; ignored by the reference processor
BLOCK = 256  # chunks transformed together: enough to vectorise, few enough to stay in cache


def dct_coefficients(chunks: np.ndarray, scale: float) -> np.ndarray:
    """Rounded scaled DCT-II coefficients `[B, T, D]` of chunks `[B, T, D]` (along time)."""
    return np.around(dct(np.asarray(chunks, np.float64), type=2, axis=1, norm="ortho") * scale)


def _as_batch(chunks: np.ndarray) -> np.ndarray:
    chunks = np.asarray(chunks, dtype=np.float64)
    if chunks.ndim == 2:
        chunks = chunks[None]
    if chunks.ndim != 3:
        raise TokenizerError(f"expected action chunks [B, T, D] or [T, D], got shape {chunks.shape}")
    if not np.isfinite(chunks).all():
        bad = np.argwhere(~np.isfinite(chunks))[0]
        raise TokenizerError(f"chunk {bad[0]} has a non-finite value at step {bad[1]}, dim {bad[2]}")
    return chunks


class FastTokenizer:
    """FAST tokenizer over normalized action chunks; see the module docstring."""

    def __init__(
        self,
        bpe: Tokenizer,
        *,
        scale: float = 10,
        vocab_size: int = 1024,
        min_token: int = 0,
        max_token: int | None = None,
        mode: Mode = "default",
        action_dim: int | None = None,
        time_horizon: int | None = None,
        clean_up_tokenization_spaces: bool = False,
    ):
        if mode not in ("default", "compat"):
            raise TokenizerError(f"unknown FAST mode {mode!r}; use 'default' or 'compat'")
        self.bpe = bpe
        self.scale = scale
        self.vocab_size = vocab_size
        self.min_token = int(min_token)
        # Without an exact record, the reference's own guarantee: max - min <= vocab_size.
        self.max_token = int(max_token) if max_token is not None else self.min_token + vocab_size
        self.mode = mode
        self.action_dim = action_dim
        self.time_horizon = time_horizon
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self._bpe_vocab_size = bpe.get_vocab_size()
        self._table: SymbolTable | None | bool = False  # built on first decode; None: unsupported
        self._known: np.ndarray | None = None  # built on first encode, see `_known_symbols`
        self._zero_tail: ZeroTailEncoder | None | bool = False  # built on first encode; None: unsupported

    # -- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        chunks: np.ndarray | list[np.ndarray],
        *,
        scale: float = 10,
        vocab_size: int = 1024,
        mode: Mode = "default",
    ) -> FastTokenizer:
        """Learn the BPE vocabulary from chunks `[N, T, D]` (or a list of `[T, D]` arrays, in order)."""
        rows = (
            [np.asarray(c, np.float64) for c in chunks]
            if isinstance(chunks, list)
            else list(_as_batch(chunks))
        )
        if not rows:
            raise TokenizerError("fit needs at least one action chunk")
        shapes = {r.shape for r in rows}
        coefficients = [np.around(dct(r, type=2, axis=0, norm="ortho").flatten() * scale) for r in rows]
        every = np.concatenate(coefficients)
        min_token, max_token = int(every.min()), int(every.max())
        if max_token - min_token > vocab_size:
            raise TokenizerError(
                f"coefficient range [{min_token}, {max_token}] needs {max_token - min_token + 1} symbols, more than "
                f"vocab_size {vocab_size}; use a larger --vocab-size or a smaller --scale (is the data normalized?)"
            )
        strings = ["".join(map(chr, (c - min_token).astype(int))) for c in coefficients]
        alphabet = [chr(i) for i in range(max_token - min_token + 1)]
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=2,
            show_progress=False,
            special_tokens=[],
            initial_alphabet=alphabet,
            max_token_length=10000,
        )
        if mode == "compat":
            from tokenizers import ByteLevelBPETokenizer

            bpe = ByteLevelBPETokenizer()._tokenizer
        else:
            bpe = Tokenizer(models.BPE())
            bpe.decoder = decoders.Fuse()
        bpe.train_from_iterator(strings, trainer=trainer)
        time_horizon, action_dim = next(iter(shapes)) if len(shapes) == 1 else (None, None)
        return cls(
            bpe,
            scale=scale,
            vocab_size=vocab_size,
            min_token=min_token,
            max_token=max_token,
            mode=mode,
            action_dim=action_dim,
            time_horizon=time_horizon,
        )

    # -- encoding --------------------------------------------------------------------------------
    def symbols(self, chunks: np.ndarray, *, on_error: EncodeErrors = "raise") -> np.ndarray:
        """Shifted coefficient symbols `[B, T*D]`, low frequencies first."""
        batch = _as_batch(chunks)
        out = np.empty((len(batch), batch.shape[1] * batch.shape[2]), np.int64)
        for start in range(0, len(batch), BLOCK):  # blocks keep the arrays in cache
            out[start : start + BLOCK] = self._block_symbols(batch[start : start + BLOCK], start, on_error)
        return out

    def _block_symbols(self, batch: np.ndarray, first: int, on_error: EncodeErrors) -> np.ndarray:
        coefficients = dct_coefficients(batch, self.scale).reshape(len(batch), -1)
        if coefficients.size and (coefficients.min() < self.min_token or coefficients.max() > self.max_token):
            outside = (coefficients < self.min_token) | (coefficients > self.max_token)
            if on_error == "raise":
                b, flat = np.argwhere(outside)[0]
                step, dim = divmod(int(flat), batch.shape[2])
                raise TokenizerError(
                    f"chunk {first + b}: DCT coefficient {int(coefficients[b, flat])} (frequency {step}, dim {dim}) "
                    f"is outside the fitted range [{self.min_token}, {self.max_token}]; refit on data like this, "
                    f"check its normalization, or encode with on_error='clip'"
                )
            coefficients = np.clip(coefficients, self.min_token, self.max_token)
        symbols = (coefficients - self.min_token).astype(np.int64)
        known = self._known_symbols()
        unknown = ~known[symbols] if not known.all() else np.zeros(0, bool)
        if unknown.any():
            # BPE drops characters outside its vocabulary without a word (the reference does too), so
            # the ids would decode to a chunk of the wrong length.
            b, flat = np.argwhere(unknown)[0]
            step, dim = divmod(int(flat), batch.shape[2])
            raise TokenizerError(
                f"chunk {first + b}: DCT coefficient {int(symbols[b, flat]) + self.min_token} (frequency {step}, "
                f"dim {dim}) never occurred when the tokenizer was fitted, so BPE would drop it; refit on data "
                f"that covers it"
            )
        return symbols

    def encode(self, chunks: np.ndarray, *, on_error: EncodeErrors = "raise") -> list[list[int]]:
        """Token ids for each chunk of `[B, T, D]` (or one `[T, D]` chunk -> a list with one entry).

        The ids are the BPE tokenizer's own for each chunk's string; the trailing run of zero
        coefficients is encoded once per length where that provably gives the same ids
        (`ZeroTailEncoder`)."""
        symbols = self.symbols(chunks, on_error=on_error)
        if self._zero_tail is False:
            alphabet = self.max_token - self.min_token + 1
            self._zero_tail = ZeroTailEncoder.of(self.bpe, -self.min_token, alphabet)
        if self._zero_tail is not None:
            return self._zero_tail.encode(symbols)
        # `encode_batch_fast` (tokenizers >= 0.20) skips the character offsets nobody here reads.
        encode_batch = getattr(self.bpe, "encode_batch_fast", self.bpe.encode_batch)
        return [encoding.ids for encoding in encode_batch(strings(symbols))]

    def _known_symbols(self) -> np.ndarray:
        """Bool `[max_token - min_token + 1]`: symbols the BPE vocabulary can spell (single characters;
        in compat mode, the byte-level characters of the symbol's UTF-8 bytes)."""
        if self._known is None:
            vocab = self.bpe.get_vocab()
            to_char = byte_to_unicode()

            def spelled(symbol: int) -> bool:
                text = chr(symbol)
                if self.mode == "compat":
                    text = "".join(to_char[b] for b in text.encode("utf-8", "surrogatepass"))
                return all(c in vocab for c in text)

            self._known = np.array([spelled(s) for s in range(self.max_token - self.min_token + 1)], bool)
        return self._known

    # -- decoding --------------------------------------------------------------------------------
    def decode(
        self,
        ids: list[list[int]],
        *,
        horizon: int | None = None,
        action_dim: int | None = None,
        on_error: DecodeErrors = "flag",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions `[B, T, D]` (float64) and validity `[B]` for id sequences.

        `flag`: an invalid sequence decodes to zeros with valid False. `raise`: TokenizerError
        naming the first invalid sequence. `relaxed`: pad (with coefficient 0) or truncate to T*D
        and clip coefficients into range, as LeRobot does; repaired sequences still get valid False.
        """
        horizon = horizon or self.time_horizon
        action_dim = action_dim or self.action_dim
        if not horizon or not action_dim:
            raise TokenizerError(
                "decode needs horizon and action_dim (the tokenizer was fitted on mixed shapes)"
            )
        if on_error not in ("flag", "raise", "relaxed"):
            raise TokenizerError(f"on_error must be flag, raise or relaxed, got {on_error!r}")
        size = horizon * action_dim
        actions = np.empty((len(ids), horizon, action_dim), np.float64)
        too_large = np.zeros(len(ids), bool)
        problems: list[str | None] = []
        if self._table is False:
            self._table = SymbolTable.of(self.bpe)
        reader = CoefficientReader(
            self.bpe, self._table, self.min_token, self.max_token, self.clean_up_tokenization_spaces
        )
        for start in range(0, len(ids), BLOCK):  # blocks keep the arrays in cache
            block = ids[start : start + BLOCK]
            coefficients = np.zeros((len(block), size), dtype=np.float64)
            problems += reader.coefficients(block, size, coefficients, relaxed=on_error == "relaxed")
            decoded = idct(
                coefficients.reshape(len(block), horizon, action_dim) / self.scale,
                type=2,
                axis=1,
                norm="ortho",
            )
            actions[start : start + len(block)] = decoded
            largest = np.maximum(decoded.max(axis=(1, 2)), -decoded.min(axis=(1, 2)))
            too_large[start : start + len(block)] = largest > self.action_bound
        valid = np.array([p is None for p in problems], dtype=bool)
        if on_error == "raise" and not valid.all():
            b = int(np.flatnonzero(~valid)[0])
            raise TokenizerError(f"sequence {b}: {problems[b]}")
        if too_large.any():
            if on_error == "raise":
                raise TokenizerError(
                    f"sequence {int(np.flatnonzero(too_large)[0])}: decoded action exceeds {self.action_bound}"
                )
            actions[too_large] = 0.0
            valid[too_large] = False
        if on_error == "flag":
            actions[~valid] = 0.0
        return actions, valid

    @property
    def bpe_vocab_size(self) -> int:
        """How many ids the BPE model really has: every id is in `[0, bpe_vocab_size)`. It can exceed
        the requested `vocab_size` (compat mode's byte-level alphabet of 256 bytes plus the symbols
        is kept whole even when `vocab_size` is smaller), so map ids into a text vocabulary with this."""
        return self._bpe_vocab_size

    @property
    def action_bound(self) -> float:
        """No decoded action exceeds twice the largest fitted coefficient magnitude (in action units)."""
        return 2.0 * max(abs(self.min_token), abs(self.max_token), 1) / self.scale

    # -- persistence -----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the Hugging Face processor layout, loadable here and by the reference processor."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        processor = {
            "action_dim": self.action_dim,
            "min_token": self.min_token,
            "processor_class": "UniversalActionProcessor",
            "scale": self.scale,
            "time_horizon": self.time_horizon,
            "vocab_size": self.vocab_size,
        }
        tokenizer_config = {
            "added_tokens_decoder": {},
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "extra_special_tokens": {},
            "model_max_length": 1000000000000000019884624838656,
            "processor_class": "UniversalActionProcessor",
            "tokenizer_class": "PreTrainedTokenizerFast",
        }
        (directory / PROCESSOR_CONFIG).write_text(json.dumps(processor, indent=2, sort_keys=True) + "\n")
        (directory / TOKENIZER_CONFIG).write_text(
            json.dumps(tokenizer_config, indent=2, sort_keys=True) + "\n"
        )
        (directory / SPECIAL_TOKENS_MAP).write_text("{}\n")
        self.bpe.save(str(directory / TOKENIZER_FILE))
        extra = {"mode": self.mode, "max_token": self.max_token, "format": 1}
        (directory / EXTRA_CONFIG).write_text(json.dumps(extra, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> FastTokenizer:
        """Load a directory written by `save_pretrained` or by the reference (e.g. FAST+)."""
        directory = Path(directory)
        missing = [f for f in (PROCESSOR_CONFIG, TOKENIZER_FILE) if not (directory / f).exists()]
        if missing:
            raise TokenizerError(
                f"{directory}: not a FAST tokenizer directory (missing {', '.join(missing)})"
            )
        processor = json.loads((directory / PROCESSOR_CONFIG).read_text())
        tokenizer_config = {}
        if (directory / TOKENIZER_CONFIG).exists():
            tokenizer_config = json.loads((directory / TOKENIZER_CONFIG).read_text())
        bpe = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        extra = (
            json.loads((directory / EXTRA_CONFIG).read_text()) if (directory / EXTRA_CONFIG).exists() else {}
        )
        pre_tokenizer = json.loads(bpe.to_str()).get("pre_tokenizer") or {}
        mode = extra.get("mode", "compat" if pre_tokenizer.get("type") == "ByteLevel" else "default")
        return cls(
            bpe,
            scale=processor.get("scale", 10),
            vocab_size=processor.get("vocab_size", 1024),
            min_token=processor.get("min_token", 0),
            max_token=extra.get("max_token"),
            mode=mode,
            action_dim=processor.get("action_dim"),
            time_horizon=processor.get("time_horizon"),
            clean_up_tokenization_spaces=bool(tokenizer_config.get("clean_up_tokenization_spaces", False)),
        )

    @property
    def fingerprint(self) -> str:
        """A hash of everything that determines the ids, for caches keyed by tokenizer."""
        digest = hashlib.sha256(self.bpe.to_str().encode())
        digest.update(json.dumps([self.scale, self.min_token, self.max_token, self.mode]).encode())
        return digest.hexdigest()[:16]
