"""Conversion memory does not grow with the data: traced peaks at 1x and 8x, never timed."""

import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vla_data.bench.synthetic import SyntheticRobotSource
from vla_data.convert import ConvertOptions, convert, infer_features
from vla_data.episode import Episode
from vla_data.samples import write_lerobot_v30_sample
from vla_data.shards import ShardDataset, shard_stats
from vla_data.shards.manifest import load_manifest
from vla_data.shards.reader import stats_from_shards
from vla_data.shards.writer import ShardWriter
from vla_data.sources import parquet_rows
from vla_data.sources.lerobot import LeRobotSource
from vla_data.sources.parquet_footer import FooterIndex
from vla_data.sources.parquet_rows import COUNTS


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


# -- LeRobot v3.0: metadata of one row group in memory, not of the whole file -----------------------
def test_lerobot_v30_metadata_held_is_bounded_at_any_episodes_per_file(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_rows, "FOOTER_WINDOW", 2048)  # ~2 row groups of this file per footer
    footers, full = {}, {}
    for per_file in (8, 64):  # 1x and 8x episodes (row groups, as lerobot writes them) per data file
        root = write_lerobot_v30_sample(
            tmp_path / f"src{per_file}", episodes=64, steps=5, episodes_per_file=per_file
        )
        (data_file, *_) = sorted(root.glob("data/*/*.parquet"))
        assert pq.ParquetFile(data_file).metadata.num_row_groups == per_file
        full[per_file] = pq.read_metadata(data_file).serialized_size
        monkeypatch.setitem(COUNTS, "footer_bytes", 0)
        before = COUNTS["rows"]
        convert(LeRobotSource.from_path(root), tmp_path / f"out{per_file}", ConvertOptions(progress=False))
        footers[per_file] = COUNTS["footer_bytes"]  # the largest footer pyarrow parsed
        assert COUNTS["rows"] - before == 64 * 5  # each row decoded once
        dataset = ShardDataset(tmp_path / f"out{per_file}")
        for e in (0, 9, 63):
            np.testing.assert_array_equal(
                dataset.episode(e)["action"][:, 1], np.float32(e + np.arange(5) / 1000)
            )
    assert full[64] > 7 * full[8]  # pyarrow's own open would parse (and hold) all of this
    # a window's footer (statistics' varints may take a byte more), whatever the file holds
    assert 0 < footers[64] < 1.1 * footers[8] and footers[64] < full[64] / 10, (footers, full)


def _varied_table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    images = [{"bytes": bytes(rng.integers(0, 255, 7, dtype=np.uint8)), "path": None} for _ in range(rows)]
    return pa.table(
        {
            "image": pa.array(images, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            "action": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=rows * 3), pa.float32()), 3),
            "state": pa.array([list(rng.normal(size=2)) for _ in range(rows)], pa.list_(pa.float64())),
            "label": pa.array(rng.choice(["a", "bb", "ccc"], rows)).dictionary_encode(),
            "flag": pa.array(rng.random(rows) > 0.5),
            "time": pa.array(np.arange(rows) * 10**6, pa.timestamp("us", tz="UTC")),
            **{f"c{i}": pa.array(rng.integers(-(2**40), 2**40, rows)) for i in range(18)},
        },
        metadata={"note": "kept"},
    )


@pytest.mark.parametrize("page_index", [False, True])
def test_footer_of_one_row_group_reads_like_the_whole_file(tmp_path, page_index):
    path = tmp_path / "varied.parquet"
    tables = [_varied_table(rows, seed) for seed, rows in enumerate([5, 300, 1, 40] * 5)]  # 20 groups
    with pq.ParquetWriter(path, tables[0].schema, write_page_index=page_index, data_page_size=512) as writer:
        for table in tables:
            writer.write_table(table.cast(tables[0].schema))
    _check_every_row_group(path)


def test_footer_of_one_row_group_on_files_written_by_lerobot(shared_data):
    files = sorted(shared_data.glob("lerobot/*/data/*/*.parquet"))
    assert files
    for path in files[:12]:
        _check_every_row_group(path)


def _check_every_row_group(path):
    whole = pq.ParquetFile(path)
    index = FooterIndex(str(path))
    count = index.num_row_groups
    assert count == whole.metadata.num_row_groups
    runs = [(k, k + 1) for k in range(count)] + [(0, count), (count // 2, count)]
    for first, stop in runs:
        metadata = index.metadata(first, stop)
        assert metadata.num_row_groups == stop - first
        assert metadata.num_rows == sum(whole.metadata.row_group(k).num_rows for k in range(first, stop))
        alone = pq.ParquetFile(path, metadata=metadata).read()
        expected = pa.concat_tables([whole.read_row_group(k) for k in range(first, stop)])
        assert alone.schema.equals(expected.schema, check_metadata=True)
        assert alone.equals(expected), (path, first, stop)
    assert index.window_end(0, 0) == 1 and index.window_end(0, 1 << 30) == count


# -- what is kept per episode until the commit ----------------------------------------------------
def test_writer_keeps_tens_of_bytes_per_episode_until_it_commits(tmp_path):
    count = 900
    episodes = [
        Episode(
            index=i,
            task="fold",
            fps=10.0,
            arrays={"action": np.full((3, 2), i, np.float32)},
            source_ref={"file": "f", "episode": i},  # a 28-character source_ref
        )
        for i in range(count)
    ]
    writer = ShardWriter(tmp_path / "out", source={"format": "test"})
    writer.set_features(10.0, infer_features(episodes[0]))
    held = {}
    tracemalloc.start()
    for i, episode in enumerate(episodes):
        writer.write(episode, position=i)
        if i + 1 in (100, count):
            held[i + 1] = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    writer.finish()
    rows = pa.ipc.open_file(tmp_path / "out" / "episodes.arrow").read_all()
    assert rows.column("row_offset").to_pylist() == [3 * i for i in range(count)]
    assert rows.column("source_ref")[count - 1].as_py() == f'{{"episode": {count - 1}, "file": "f"}}'
    per_episode = (held[count] - held[100]) / (count - 100)
    assert per_episode < 200, per_episode  # a dict per episode held ~350 bytes


def test_lerobot_v30_episode_list_costs_no_dict_per_episode_table_row(tmp_path):
    root = write_lerobot_v30_sample(tmp_path / "src", episodes=2000, steps=2, episodes_per_file=500)
    source = LeRobotSource.from_path(root)
    source.episode_refs()  # imports and caches out of the measurement
    refs, peak = _traced_peak(source.episode_refs)
    assert [r["episode"] for r in refs[:3]] == [0, 1, 2] and refs[1999]["rows"] == [998, 1000]
    assert len({id(r["file"]) for r in refs}) == 4  # one path string per data file
    # ~540 bytes: the refs, plus a list per column while they are built (a dict per table row: ~830)
    assert peak / len(refs) < 700, peak / len(refs)
