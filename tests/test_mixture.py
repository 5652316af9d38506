"""The epoch plan: seeded permutations at chosen positions, memory per batch, shard-block shuffle."""

import tracemalloc

import numpy as np
import pytest

from vla_data.errors import VlaDataError
from vla_data.loader.mixture import MixturePlan, apportion, even_layout
from vla_data.permutation import permute, sample_without_replacement


@pytest.mark.parametrize("n", [1, 2, 3, 16, 17, 1000, 4097])
def test_permute_is_a_bijection_and_depends_on_the_key(n):
    a = permute(np.arange(n), n, (1, 2))
    assert sorted(a.tolist()) == list(range(n))
    if n >= 16:
        assert not np.array_equal(a, permute(np.arange(n), n, (1, 3)))
        assert np.array_equal(a[5:9], permute(np.arange(5, 9), n, (1, 2)))  # any slice, same entries


def test_sample_without_replacement_is_distinct_sorted_and_spread():
    picks = sample_without_replacement(10_000, 10**12, (7,))
    assert len(np.unique(picks)) == 10_000 and np.all(np.diff(picks) > 0)
    assert picks.min() < 10**10 and picks.max() > 10**12 - 10**10  # covers the range, not a prefix
    assert np.array_equal(sample_without_replacement(10, 5, (0,)), np.arange(5))


def test_apportion_and_even_layout_by_hand():
    assert apportion(8, np.array([0.5, 0.3, 0.2])).tolist() == [4, 2, 2]  # quotas 4, 2.4, 1.6
    assert even_layout(np.array([3, 1])).tolist() == [0, 0, 1, 0]


def _peak_bytes(plan: MixturePlan) -> int:
    tracemalloc.start()
    plan.batch(0, 0)
    plan.batch(0, plan.batches_per_rank - 1)
    plan.batch(1, plan.batches_per_rank // 2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


@pytest.mark.parametrize("mode", ["random", "stratified"])
def test_epoch_plan_memory_does_not_grow_with_the_dataset(mode):
    def plan(scale):
        return MixturePlan(
            sizes=(4000 * scale, 1000 * scale),
            weights=(0.8, 0.2),
            batch_size=32,
            samples_per_epoch=5000 * scale,
            mode=mode,
        )

    small, huge = _peak_bytes(plan(1)), _peak_bytes(plan(100_000))  # 5k vs 500M samples per epoch
    # a materialised plan would hold >= 12 bytes per sample: 6 GB for the huge one
    assert huge < 1.3 * small + 64 * 1024, (small, huge)


@pytest.mark.parametrize("mode", ["random", "stratified"])
def test_epoch_totals_follow_the_weights_and_passes_do_not_repeat(mode):
    plan = MixturePlan(
        sizes=(300, 70), weights=(0.75, 0.25), batch_size=10, samples_per_epoch=1000, mode=mode, seed=4
    )
    keys = [k for b in range(plan.batches_per_rank) for k in plan.batch(0, b)]
    sources = np.array([s for s, _ in keys])
    assert np.bincount(sources).tolist() == [750, 250]
    for s, size in ((0, 300), (1, 70)):
        seen = [i for source, i in keys if source == s]
        for start in range(0, len(seen) - size + 1, size):  # every full pass is a permutation
            assert sorted(seen[start : start + size]) == list(range(size))
    assert plan.batch(1, 0) != plan.batch(0, 0)


def test_a_rare_source_is_apportioned_over_several_batches():
    plan = MixturePlan(
        sizes=(100, 100), weights=(0.95, 0.05), batch_size=4, samples_per_epoch=400, mode="stratified"
    )
    assert plan.period == 5  # 0.05 x 4 = 0.2 slots per batch: one slot every 5 batches
    counts = [sum(s for s, _ in plan.batch(0, b)) for b in range(plan.batches_per_rank)]
    assert sum(counts) == 20 and all(sum(counts[b : b + 5]) == 1 for b in range(0, 100, 5))


def _block_plan(**overrides):
    blocks = tuple(range(0, 1001, 100))  # 10 shards of 100 samples
    base = dict(
        sizes=(1000,),
        weights=(1.0,),
        batch_size=10,
        samples_per_epoch=1000,
        shuffle="shard_block",
        window=2,
        blocks=(blocks,),
        seed=5,
    )
    return MixturePlan(**{**base, **overrides})


def test_shard_block_shuffle_reads_a_window_of_shards_at_a_time():
    plan = _block_plan()
    samples = [i for b in range(plan.batches_per_rank) for _, i in plan.batch(0, b)]
    assert sorted(samples) == list(range(1000))  # each sample once per pass
    for window in range(5):  # 200 samples = 2 shards per window
        shards = {i // 100 for i in samples[window * 200 : (window + 1) * 200]}
        assert len(shards) == 2
    first = samples[:200]
    assert first != sorted(first)  # shuffled inside the window
    other = [i for b in range(20) for _, i in plan.batch(1, b)]
    assert {i // 100 for i in other} != {i // 100 for i in first} or other != first  # new epoch, new order


def test_shard_block_ranks_are_disjoint_and_interleave_to_the_single_rank_stream():
    single = _block_plan()
    world = _block_plan(world_size=2)
    per_rank = [[world.batch(0, b, rank) for b in range(world.batches_per_rank)] for rank in range(2)]
    interleaved = [per_rank[g % 2][g // 2] for g in range(single.batches_per_rank)]
    assert interleaved == [single.batch(0, b) for b in range(single.batches_per_rank)]


def test_shard_block_needs_boundaries_that_split_the_source():
    with pytest.raises(VlaDataError, match="shard boundaries"):
        _block_plan(blocks=((0, 500, 900),))
    with pytest.raises(VlaDataError, match="needs the shard boundaries"):
        _block_plan(blocks=None)
    with pytest.raises(VlaDataError, match="window"):
        _block_plan(window=0)
