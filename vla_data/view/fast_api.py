"""FAST reconstruction of an episode's actions: what the backbone's action tokens can express.

The episode's actions are normalized with the manifest's quantile statistics (as `vla-data
tokenizer fit` does), cut into consecutive chunks of the tokenizer's horizon, encoded, decoded and
unnormalized, so the overlay is in the units of the action curves. Tokens per chunk are counted for
chunks starting at every `stride`-th step (at most MAX_STARTS of them per episode).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_data.errors import TokenizerError
from vla_data.normalize import Normalizer
from vla_data.schema import ACTION
from vla_data.shards import ShardDataset
from vla_data.tokenizers.fast import FastTokenizer

from .dataset_api import check_episode, floats

MAX_STARTS = 500


def fast_reconstruction(ds: ShardDataset, fast: FastTokenizer, episode: int) -> dict[str, Any]:
    """Reconstructed actions `[T, D]`, per-chunk validity and token counts over time."""
    from vla_data.loader.chunks import chunk_indices  # the loader's chunk rule (imports torch)

    check_episode(ds, episode)
    where = f"{ds.uri or ds.root} episode {episode}"
    if ACTION not in ds.features or ACTION not in ds.manifest.stats:
        raise TokenizerError(f"{where}: no '{ACTION}' feature with statistics to reconstruct")
    horizon = fast.time_horizon
    if not horizon:
        raise TokenizerError(
            "the FAST tokenizer records no time_horizon (fitted on mixed shapes); refit it on this dataset"
        )
    actions = np.asarray(ds.episode(episode, [ACTION])[ACTION], np.float64)
    length = len(actions)
    actions = actions.reshape(length, -1)  # [T, D]
    if fast.action_dim and fast.action_dim != actions.shape[1]:
        raise TokenizerError(
            f"{where}: actions have {actions.shape[1]} dims, the FAST tokenizer was fitted on {fast.action_dim}"
        )
    norm = Normalizer.from_stats(ds.manifest.stats[ACTION], "quantile")

    starts = np.arange(0, length, horizon)
    rows, _ = chunk_indices(length, starts, horizon)
    ids = fast.encode(norm.normalize(actions[rows]), on_error="clip")  # chunks [n, H, D]
    decoded, valid = fast.decode(ids, horizon=horizon, action_dim=actions.shape[1])
    recon = norm.unnormalize(decoded).reshape(-1, actions.shape[1])[:length]  # [T, D]
    error = recon - actions

    stride = max(1, -(-length // MAX_STARTS))
    every = np.arange(0, length, stride)
    rows, _ = chunk_indices(length, every, horizon)
    counts = [len(seq) for seq in fast.encode(norm.normalize(actions[rows]), on_error="clip")]
    return {
        "index": episode,
        "horizon": horizon,
        "chunk_starts": starts.tolist(),
        "chunk_tokens": [len(seq) for seq in ids],
        "chunk_valid": valid.tolist(),
        "values": floats(recon),
        "rmse": floats(np.sqrt(np.mean(error**2, axis=0))),
        "max_abs_error": floats(np.abs(error).max(axis=0)),
        "token_starts": every.tolist(),
        "tokens_per_chunk": counts,
    }
