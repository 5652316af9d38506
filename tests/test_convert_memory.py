"""Conversion memory does not grow with the data: traced peaks at 1x and 8x, never timed."""

import tracemalloc

import numpy as np
import pyarrow as pa

from vla_data.bench.synthetic import SyntheticRobotSource
from vla_data.convert import ConvertOptions, convert
from vla_data.shards import ShardDataset, shard_stats
from vla_data.shards.manifest import load_manifest
from vla_data.shards.reader import stats_from_shards


def _traced_peak(function):
    tracemalloc.start()
    try:
        result = function()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_statistics_pass_memory_is_bounded_by_a_block_not_by_the_shard(tmp_path, monkeypatch):
    monkeypatch.setattr(shard_stats, "BLOCK_ROWS", 400)
    peaks, results = {}, {}
    for scale in (1, 8):
        out = tmp_path / f"x{scale}"
        # one shard holding every episode, images included (the pass must not load them)
        convert(SyntheticRobotSource(40 * scale, 25, dim=14), out, ConvertOptions(progress=False))
        manifest = load_manifest(out)
        assert len(manifest.shards) == 1
        results[scale], peaks[scale] = _traced_peak(
            lambda out=out, manifest=manifest: stats_from_shards(out, manifest.shards, manifest.features)
        )
        assert results[scale] == manifest.stats  # the conversion used the same pass
    # 1,000 vs 8,000 steps of two 14-dim features: the whole-column pass held 8x as much
    assert peaks[8] < 1.5 * peaks[1], peaks
    # blocks give the statistics of the whole data
    ds = ShardDataset(tmp_path / "x8")
    action = np.concatenate([ds.episode_table(e, ["action"]).column(0).to_numpy() for e in range(320)])
    action = np.stack(action).astype(np.float64)
    result = results[8]["action"]
    np.testing.assert_allclose(result["mean"], action.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result["std"], action.std(axis=0), rtol=1e-10)
    np.testing.assert_array_equal(result["min"], action.min(axis=0))
    np.testing.assert_array_equal(result["max"], action.max(axis=0))
    bound = np.asarray(result["quantile_error_bound"])
    assert np.all(np.abs(np.asarray(result["q50"]) - np.quantile(action, 0.5, axis=0)) <= bound)
    assert pa.total_allocated_bytes() < 1 << 20  # nothing of the shards left allocated
