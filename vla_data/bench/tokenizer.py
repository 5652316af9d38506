"""FAST tokenizer benchmarks: batched vs per-chunk encode/decode, fit time, mode comparison."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


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


def _measure(fast, sets: list, horizon: int, dim: int) -> dict[str, Any]:
    """Batched encode/decode against the reference way (one DCT and one tokenizer call per chunk).

    Each repeat times both ways back to back on fresh chunks, emptying the BPE model's word cache
    before each timed call (it would otherwise serve words seen by the untimed warm-up); speedups
    are medians of the per-repeat ratios, so load that drifts between repeats cancels out. Both
    wall-clock and CPU-time ratios are kept: CPU time (all threads of this process) is the work
    done, which other processes on a loaded machine disturb far less, but it does not credit the
    tokenizer's threads. "bpe" is one plain `encode_batch_fast` over the whole strings, what the
    batched encode would be without its zero-tail cut."""
    import statistics

    import numpy as np
    from scipy.fft import dct, idct

    from vla_data.tokenizers.zero_tail import strings as symbol_strings

    def loop_encode(data):
        for chunk in data:
            coefficients = np.around(dct(chunk, axis=0, norm="ortho") * fast.scale)
            text = "".join(map(chr, np.maximum(coefficients.flatten() - fast.min_token, 0).astype(int)))
            fast.bpe.encode(text)

    def loop_decode(sequences):
        for seq in sequences:
            codes = np.array(list(map(ord, fast.bpe.decode(seq)))) + fast.min_token
            idct(codes.reshape(horizon, dim) / fast.scale, axis=0, norm="ortho")

    clear_cache = getattr(fast.bpe.model, "_clear_cache", lambda: None)

    keys = ("enc", "enc_loop", "dec", "dec_loop", "bpe")
    times: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in keys}

    def timed(key: str, func, x) -> None:
        clear_cache()
        wall, process = time.perf_counter(), time.process_time()
        func(x)
        times[key].append(time.perf_counter() - wall)
        cpu[key].append(time.process_time() - process)

    def paired(table: dict[str, list[float]], slow: str, fast_key: str) -> float:
        return statistics.median(a / b for a, b in zip(table[slow], table[fast_key], strict=True))

    encode_bpe = getattr(fast.bpe, "encode_batch_fast", fast.bpe.encode_batch)
    ids = []
    for data in sets:
        seqs = fast.encode(data, on_error="clip")
        ids.append(seqs)
        strings = symbol_strings(fast.symbols(data, on_error="clip"))
        timed("enc", lambda d: fast.encode(d, on_error="clip"), data)
        timed("enc_loop", loop_encode, data)
        timed("bpe", encode_bpe, strings)
        timed("dec", lambda s: fast.decode(s, horizon=horizon, action_dim=dim), seqs)
        timed("dec_loop", loop_decode, seqs)
    n, med = len(sets[0]), {k: statistics.median(v) for k, v in times.items()}
    ratio = {k: paired(times, k + "_loop", k) for k in ("enc", "dec")}
    ratio["bpe"] = paired(times, "bpe", "enc")
    return {
        "shape": f"{horizon}x{dim}",
        "tokens_per_chunk": float(np.mean([len(x) for x in ids[0]])),
        "encode_batched_per_s": n / med["enc"],
        "encode_loop_per_s": n / med["enc_loop"],
        "decode_batched_per_s": n / med["dec"],
        "decode_loop_per_s": n / med["dec_loop"],
        "encode_vs_plain_bpe": ratio["bpe"],
        "encode_speedup": ratio["enc"],
        "decode_speedup": ratio["dec"],
        "encode_speedup_cpu": paired(cpu, "enc_loop", "enc"),
        "decode_speedup_cpu": paired(cpu, "dec_loop", "dec"),
    }


def bench_tokenizer(
    *,
    shapes: list[tuple[int, int]] = ((10, 7), (30, 26), (50, 14)),
    chunks: int = 2000,
    fit_chunks: int = 100_000,
    mode: str = "default",
    repeats: int = 5,
    fast_plus: str | Path | None = None,
) -> dict[str, Any]:
    """Batched encode/decode against the reference's per-chunk loop on held-out chunks, for a
    tokenizer fitted per shape (`mode`) and, if given, the published FAST+; the BPE share; fit time."""
    from vla_data.tokenizers import FastTokenizer

    load = [os.getloadavg()[0]]  # the wall-clock ratios lean on the tokenizer's two threads
    universal = FastTokenizer.from_pretrained(fast_plus) if fast_plus else None
    rows = []
    for horizon, dim in shapes:
        sets = [smooth_chunks(chunks, horizon, dim, seed=10 + r) for r in range(repeats)]  # held out
        fitted = FastTokenizer.fit(smooth_chunks(max(chunks, 2000), horizon, dim, seed=1), mode=mode)
        rows.append({"tokenizer": f"fitted {mode}", **_measure(fitted, sets, horizon, dim)})
        if universal is not None:
            rows.append({"tokenizer": "FAST+", **_measure(universal, sets, horizon, dim)})
    load.append(os.getloadavg()[0])
    fit_data = smooth_chunks(fit_chunks, 10, 7, seed=1)
    start = time.perf_counter()
    FastTokenizer.fit(fit_data, mode=mode)
    fit_seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "chunks": chunks,
        "repeats": repeats,
        "rows": rows,
        "load": load,
        "cpus": os.cpu_count(),
        "fit": {"chunks": fit_chunks, "shape": "10x7", "seconds": fit_seconds},
    }


def format_tokenizer_table(result: dict[str, Any]) -> str:
    lines = [
        f"FAST, {result['chunks']} held-out chunks per shape, median of {result['repeats']} (x: median of paired "
        "ratios, wall clock and CPU time of all threads); chunks/s",
        f"{'tokenizer':<16}{'shape':<7}{'tokens':>7}{'encode batched':>16}{'loop':>8}{'x':>6}{'x cpu':>7}"
        f"{'decode batched':>16}{'loop':>8}{'x':>6}{'x cpu':>7}{'vs BPE call':>13}",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['tokenizer']:<16}{r['shape']:<7}{r['tokens_per_chunk']:>7.1f}{r['encode_batched_per_s']:>16.0f}"
            f"{r['encode_loop_per_s']:>8.0f}{r['encode_speedup']:>6.1f}{r['encode_speedup_cpu']:>7.1f}"
            f"{r['decode_batched_per_s']:>16.0f}{r['decode_loop_per_s']:>8.0f}{r['decode_speedup']:>6.1f}"
            f"{r['decode_speedup_cpu']:>7.1f}{r['encode_vs_plain_bpe']:>12.1f}x"
        )
    if "load" in result:
        lines.append(
            f"load average {result['load'][0]:.1f} -> {result['load'][1]:.1f} on {result['cpus']} CPUs: the batched "
            "BPE uses the tokenizer's threads, so the wall-clock x needs an idle CPU; x cpu does not"
        )
    fit = result["fit"]
    lines.append(
        f"fit ({result['mode']} mode) on {fit['chunks']} chunks of {fit['shape']}: {fit['seconds']:.1f} s"
    )
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
