"""Seeded permutations of `range(n)` evaluated at chosen positions, in memory proportional to the
positions asked for, never to `n`.

`permute(positions, n, key)` is entry `positions` of one fixed random permutation of `range(n)`
(chosen by `key`): a balanced Feistel network on the smallest even power of two >= n, walked
until the value lands inside `range(n)` (cycle walking keeps it a bijection). So

    permute(np.arange(n), n, key)        # a full permutation of range(n)
    np.sort(permute(np.arange(k), n, key))   # k distinct samples of range(n), k << n

and any slice of the permutation costs only that slice, which is what lets the loader's epoch
plan and `tokenizer fit`'s chunk sample scale to billions of steps.
"""

from __future__ import annotations

import functools

import numpy as np

_ROUNDS = 6
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a strong 64-bit integer hash (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def round_keys(key: tuple[int, ...] | list[int]) -> np.ndarray:
    """The per-round keys of the permutation named by `key` (a tuple of non-negative ints)."""
    return _round_keys(tuple(int(k) for k in key))


@functools.lru_cache(maxsize=1024)
def _round_keys(key: tuple[int, ...]) -> np.ndarray:
    """Cached: seeding a generator costs more than a batch's Feistel rounds (the loader asks for
    the same few keys every batch). Read-only, so callers cannot change a cached entry."""
    keys = np.random.default_rng(list(key)).integers(0, 2**63, _ROUNDS, dtype=np.uint64)
    keys.flags.writeable = False
    return keys


def permute(positions: np.ndarray, n: int, key: tuple[int, ...] | list[int]) -> np.ndarray:
    """Entries `positions` (ints in `[0, n)`) of the permutation of `range(n)` named by `key`; int64."""
    positions = np.asarray(positions, dtype=np.int64)
    if n <= 1:
        return np.zeros_like(positions)
    if positions.size and (positions.min() < 0 or positions.max() >= n):
        raise ValueError(f"positions must lie in [0, {n})")
    bits = (n - 1).bit_length()
    half = (bits + 1) // 2
    mask = np.uint64((1 << half) - 1)
    shift = np.uint64(half)
    keys = round_keys(key)
    out = positions.astype(np.uint64)
    walking = np.ones(out.shape, bool)
    while walking.any():
        x = out[walking]
        left, right = x >> shift, x & mask
        for k in keys:
            left, right = right, left ^ (_mix(right ^ k) & mask)
        x = (left << shift) | right
        out[walking] = x
        walking[walking] = x >= np.uint64(n)
    return out.astype(np.int64)


def sample_without_replacement(k: int, n: int, key: tuple[int, ...] | list[int]) -> np.ndarray:
    """`min(k, n)` distinct ints of `range(n)`, sorted, chosen by `key`; O(k) memory."""
    if k >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(permute(np.arange(k, dtype=np.int64), n, key))
