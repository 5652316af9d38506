"""Compression and reconstruction of an action tokenizer on chunks, against the binning baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_data.tokenizers.binning import BinningTokenizer
from vla_data.tokenizers.chunks import Chunks


def _errors(decoded: np.ndarray, original: np.ndarray) -> dict[str, float]:
    if len(original) == 0:
        return {"rmse": float("nan"), "max_abs": float("nan")}
    diff = decoded - original
    return {"rmse": float(np.sqrt(np.mean(diff**2))), "max_abs": float(np.abs(diff).max())}


def evaluate_tokenizer(tokenizer, chunks: Chunks) -> dict[str, Any]:
    """Tokens per chunk, compression vs binning, errors in normalized and original units, failures."""
    values = chunks.values
    n, horizon, dim = values.shape
    ids = tokenizer.encode(values, on_error="clip")
    lengths = np.array([len(x) for x in ids])
    decoded, valid = tokenizer.decode(ids, horizon=horizon, action_dim=dim, on_error="flag")
    binning = BinningTokenizer()
    bin_decoded, _ = binning.decode(binning.encode(values), horizon=horizon, action_dim=dim)
    original_units = chunks.unnormalize(values)
    return {
        "chunks": n,
        "horizon": horizon,
        "action_dim": dim,
        "mode": getattr(tokenizer, "mode", None),
        "tokens_per_chunk": {
            "mean": float(lengths.mean()),
            "p50": float(np.percentile(lengths, 50)),
            "p99": float(np.percentile(lengths, 99)),
            "max": int(lengths.max()),
        },
        "binning_tokens_per_chunk": horizon * dim,
        "compression_vs_binning": float(horizon * dim / lengths.mean()),
        "decode_failure_rate": float(1 - valid.mean()),
        "normalized": _errors(decoded[valid], values[valid]),
        "original_units": _errors(chunks.unnormalize(decoded)[valid], original_units[valid]),
        "binning_normalized": _errors(bin_decoded, values),
        "binning_original_units": _errors(chunks.unnormalize(bin_decoded), original_units),
    }


def format_eval_table(result: dict[str, Any]) -> str:
    t = result["tokens_per_chunk"]
    spread = f"{t['p50']:.0f}/{t['p99']:.0f}/{t['max']}"
    rows = [
        f"{result['chunks']} chunks of {result['horizon']} steps x {result['action_dim']} dims (mode {result['mode']})",
        f"{'':<26}{'FAST':>12}{'binning':>12}",
        f"{'tokens/chunk mean':<26}{t['mean']:>12.1f}{result['binning_tokens_per_chunk']:>12d}",
        f"{'tokens/chunk p50/p99/max':<26}{spread:>12}",
        f"{'compression vs binning':<26}{result['compression_vs_binning']:>11.2f}x{1.0:>11.2f}x",
        f"{'RMSE (normalized)':<26}{result['normalized']['rmse']:>12.4g}{result['binning_normalized']['rmse']:>12.4g}",
        f"{'max abs err (normalized)':<26}{result['normalized']['max_abs']:>12.4g}{result['binning_normalized']['max_abs']:>12.4g}",
        f"{'RMSE (original units)':<26}{result['original_units']['rmse']:>12.4g}{result['binning_original_units']['rmse']:>12.4g}",
        f"{'max abs err (original)':<26}{result['original_units']['max_abs']:>12.4g}{result['binning_original_units']['max_abs']:>12.4g}",
        f"{'decode failure rate':<26}{result['decode_failure_rate']:>12.2%}{0.0:>12.2%}",
    ]
    return "\n".join(rows)


def plot_tokenizer(tokenizer, chunks: Chunks, path: str, *, examples: int = 3) -> None:
    """Original vs decoded actions for a few chunks, and the token-length histogram (needs `viz`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("--plot needs matplotlib: pip install 'vla-data[viz]'") from e
    values = chunks.values
    ids = tokenizer.encode(values, on_error="clip")
    decoded, _ = tokenizer.decode(ids, horizon=values.shape[1], action_dim=values.shape[2])
    picks = np.linspace(0, len(values) - 1, min(examples, len(values))).astype(int)
    fig, axes = plt.subplots(1, len(picks) + 1, figsize=(4 * (len(picks) + 1), 3.2))
    for ax, i in zip(axes[:-1], picks, strict=True):
        for d in range(min(values.shape[2], 4)):
            line = ax.plot(values[i, :, d], lw=1.5)[0]
            ax.plot(decoded[i, :, d], ls="--", color=line.get_color(), lw=1)
        ax.set_title(f"chunk {i}: {len(ids[i])} tokens (solid original, dashed decoded)", fontsize=8)
    axes[-1].hist([len(x) for x in ids], bins=30)
    axes[-1].set_title("tokens per chunk", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
