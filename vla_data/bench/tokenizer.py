"""FAST tokenizer benchmarks: batched vs per-chunk encode/decode, fit time, mode comparison."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vla_data.bench.timing import median_seconds


def smooth_chunks(n: int, horizon: int, dim: int, seed: int = 0):
    """Normalized-looking synthetic chunks `[n, horizon, dim]`: sums of slow sinusoids in [-1, 1]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, horizon)[None, :, None]
    out = np.zeros((n, horizon, dim))
    for _ in range(3):
        freq = rng.uniform(0.1, 1.5, (n, 1, dim))
        out += rng.uniform(0.1, 0.3, (n, 1, dim)) * np.sin(
            2 * np.pi * (freq * t + rng.uniform(0, 1, (n, 1, dim)))
        )
    return out + rng.normal(0, 0.01, out.shape)


def bench_tokenizer(
    *,
    shapes: list[tuple[int, int]] = ((10, 7), (30, 26), (50, 14)),
    chunks: int = 2000,
    fit_chunks: int = 100_000,
    mode: str = "default",
    repeats: int = 5,
) -> dict[str, Any]:
    """Batched encode/decode against the reference's per-chunk loop, the BPE share, and fit time."""
    import numpy as np
    from scipy.fft import dct, idct

    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.fast import _strings

    rows = []
    for horizon, dim in shapes:
        data = smooth_chunks(chunks, horizon, dim)
        fast = FastTokenizer.fit(data, mode=mode)
        ids = fast.encode(data)

        def loop_encode(fast=fast, data=data):
            for chunk in data:
                coefficients = np.around(dct(chunk, axis=0, norm="ortho") * fast.scale)
                text = "".join(map(chr, np.maximum(coefficients.flatten() - fast.min_token, 0).astype(int)))
                fast.bpe.encode(text)

        def loop_decode(fast=fast, ids=ids, horizon=horizon, dim=dim):
            for seq in ids:
                codes = np.array(list(map(ord, fast.bpe.decode(seq)))) + fast.min_token
                idct(codes.reshape(horizon, dim) / fast.scale, axis=0, norm="ortho")

        strings = _strings(fast.symbols(data))
        batch_encode = median_seconds(lambda fast=fast, data=data: fast.encode(data), repeats)
        bpe_only = median_seconds(lambda fast=fast, strings=strings: fast.bpe.encode_batch(strings), repeats)
        batch_decode = median_seconds(
            lambda fast=fast, ids=ids, h=horizon, d=dim: fast.decode(ids, horizon=h, action_dim=d), repeats
        )
        rows.append(
            {
                "shape": f"{horizon}x{dim}",
                "tokens_per_chunk": float(np.mean([len(x) for x in ids])),
                "encode_batched_per_s": chunks / batch_encode,
                "encode_loop_per_s": chunks / median_seconds(loop_encode, repeats),
                "decode_batched_per_s": chunks / batch_decode,
                "decode_loop_per_s": chunks / median_seconds(loop_decode, repeats),
                "bpe_share_of_encode": bpe_only / batch_encode,
            }
        )
        rows[-1]["encode_speedup"] = rows[-1]["encode_batched_per_s"] / rows[-1]["encode_loop_per_s"]
        rows[-1]["decode_speedup"] = rows[-1]["decode_batched_per_s"] / rows[-1]["decode_loop_per_s"]
    fit_data = smooth_chunks(fit_chunks, 10, 7, seed=1)
    start = time.perf_counter()
    FastTokenizer.fit(fit_data, mode=mode)
    fit_seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "chunks": chunks,
        "repeats": repeats,
        "rows": rows,
        "fit": {"chunks": fit_chunks, "shape": "10x7", "seconds": fit_seconds},
    }


def format_tokenizer_table(result: dict[str, Any]) -> str:
    lines = [
        f"FAST ({result['mode']} mode), {result['chunks']} chunks per shape, median of {result['repeats']}; chunks/s",
        f"{'shape':<7}{'tokens':>7}{'encode batched':>16}{'loop':>9}{'x':>6}{'decode batched':>16}{'loop':>9}{'x':>6}{'BPE share':>11}",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['shape']:<7}{r['tokens_per_chunk']:>7.1f}{r['encode_batched_per_s']:>16.0f}{r['encode_loop_per_s']:>9.0f}"
            f"{r['encode_speedup']:>6.1f}{r['decode_batched_per_s']:>16.0f}{r['decode_loop_per_s']:>9.0f}"
            f"{r['decode_speedup']:>6.1f}{r['bpe_share_of_encode']:>10.0%}"
        )
    fit = result["fit"]
    lines.append(f"fit on {fit['chunks']} chunks of {fit['shape']}: {fit['seconds']:.1f} s")
    return "\n".join(lines)


def compare_fast_modes(golden: str | Path) -> list[dict[str, Any]]:
    """Tokens per chunk of `default` vs `compat` FAST fitted on the same chunks, for each golden
    set folder under `golden` (`fit_chunks.npy` to fit, `chunks.npy` to encode)."""
    import numpy as np

    from vla_data.tokenizers import FastTokenizer

    rows = []
    for folder in sorted(p for p in Path(golden).iterdir() if (p / "fit_chunks.npy").exists()):
        fit, chunks = np.load(folder / "fit_chunks.npy"), np.load(folder / "chunks.npy")
        row = {"set": folder.name, "shape": f"{chunks.shape[1]}x{chunks.shape[2]}", "fit_chunks": len(fit)}
        decoded = {}
        for mode in ("compat", "default"):
            fast = FastTokenizer.fit(fit, mode=mode)
            ids = fast.encode(chunks)
            row[mode] = float(np.mean([len(x) for x in ids]))
            decoded[mode], _ = fast.decode(ids, horizon=chunks.shape[1], action_dim=chunks.shape[2])
        row["identical_reconstruction"] = bool(np.array_equal(decoded["compat"], decoded["default"]))
        row["saving"] = 1 - row["default"] / row["compat"]
        rows.append(row)
    return rows


def format_modes_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'set':<18}{'shape':>7}{'compat':>9}{'default':>9}{'saving':>8}  same decode"]
    for r in rows:
        lines.append(
            f"{r['set']:<18}{r['shape']:>7}{r['compat']:>9.1f}{r['default']:>9.1f}{r['saving']:>8.1%}  {r['identical_reconstruction']}"
        )
    return "\n".join(lines)
