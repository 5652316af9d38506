"""Chunks sampled from shards, and the `vla-data tokenizer` commands on a converted dataset."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from vla_data.cli import main
from vla_data.convert import convert
from vla_data.errors import VlaDataError
from vla_data.normalize import Normalizer
from vla_data.shards import ShardDataset
from vla_data.sources.hdf5 import HDF5Source
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.chunks import DEFAULT_MAX_CHUNKS, ChunkSpec, sample_chunks


@pytest.fixture(scope="module")
def dataset(demo_hdf5, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "ds"
    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", fps=10), out)
    return out


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def test_chunks_lie_inside_episodes_and_are_normalized(dataset):
    ds = ShardDataset(dataset)
    chunks = sample_chunks([dataset], ChunkSpec(seconds=1.0))  # fps 10 -> 10 steps
    assert chunks.values.shape == (3 * (40 - 10 + 1), 10, 14)
    norm = Normalizer.from_stats(ds.manifest.stats["action"], "quantile")
    np.testing.assert_allclose(chunks.values[31 + 5], norm.normalize(ds.episode(1)["action"][5:15]))
    np.testing.assert_allclose(chunks.unnormalize(chunks.values)[31 + 5], ds.episode(1)["action"][5:15])
    a = sample_chunks([dataset], ChunkSpec(horizon=8, max_chunks=20, seed=3)).values
    b = sample_chunks([dataset], ChunkSpec(horizon=8, max_chunks=20, seed=3)).values
    c = sample_chunks([dataset], ChunkSpec(horizon=8, max_chunks=20, seed=4)).values
    assert a.shape == (20, 8, 14) and np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(VlaDataError, match="at least 41 steps"):
        sample_chunks([dataset], ChunkSpec(horizon=41))


def test_fit_eval_encode_decode_commands(dataset, tmp_path):
    tokdir = tmp_path / "tok"
    result = run("tokenizer", "fit", dataset, "-o", tokdir, "--horizon", "10", "--vocab-size", "512")
    assert result.exit_code == 0, result.output
    fast = FastTokenizer.from_pretrained(tokdir)
    assert fast.mode == "default" and fast.time_horizon == 10 and fast.action_dim == 14

    result = run("tokenizer", "eval", tokdir, dataset, "--json")
    report = json.loads(result.output)
    assert report["horizon"] == 10 and report["decode_failure_rate"] == 0.0
    assert report["binning_tokens_per_chunk"] == 140 and report["compression_vs_binning"] > 1
    assert report["normalized"]["max_abs"] < 0.2
    table = run("tokenizer", "eval", tokdir, dataset).output
    assert "compression vs binning" in table and "RMSE (original units)" in table

    chunks = sample_chunks([dataset], ChunkSpec(horizon=10, max_chunks=3)).values
    np.save(tmp_path / "chunks.npy", chunks)
    encoded = run("tokenizer", "encode", tokdir, tmp_path / "chunks.npy")
    lines = encoded.output.strip().splitlines()
    assert [json.loads(x) for x in lines] == fast.encode(chunks)
    decoded = run(
        "tokenizer",
        "decode",
        tokdir,
        "-",
        "--horizon",
        10,
        "--action-dim",
        14,
        "-o",
        tmp_path / "out.npy",
        input=encoded.output,
    )
    assert decoded.exit_code == 0
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), chunks, atol=0.1)


def test_fit_errors_are_one_clear_line(dataset, tmp_path):
    result = run("tokenizer", "fit", dataset, "-o", tmp_path / "t", "--horizon", "10", "--key", "nope")
    assert result.exit_code == 1 and "no feature 'nope'" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["tokenizer"],
        ["tokenizer", "fit"],
        ["tokenizer", "eval"],
        ["tokenizer", "encode"],
        ["tokenizer", "decode"],
    ],
)
def test_tokenizer_help(command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_eval_plot_draws_a_png(dataset, tmp_path):
    pytest.importorskip("matplotlib", reason="--plot needs the viz extra (pip install 'vla-data[viz]')")
    run("tokenizer", "fit", dataset, "-o", tmp_path / "tok", "--horizon", "10", "--vocab-size", "512")
    result = run("tokenizer", "eval", tmp_path / "tok", dataset, "--plot", tmp_path / "plot.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sampled_chunks_are_distinct_real_chunks_with_stride(dataset):
    ds = ShardDataset(dataset)
    chunks = sample_chunks([dataset], ChunkSpec(horizon=8, stride=4, max_chunks=12, seed=1))
    every = sample_chunks([dataset], ChunkSpec(horizon=8, stride=4, max_chunks=None))
    assert every.values.shape[0] == 3 * 9  # starts 0, 4, ..., 32 of each 40-step episode
    assert chunks.values.shape == (12, 8, 14)
    flat = every.values.reshape(len(every.values), -1)
    rows = [int(np.flatnonzero((flat == c.reshape(-1)).all(1))[0]) for c in chunks.values]
    assert len(set(rows)) == 12 and rows == sorted(rows)  # distinct, kept in dataset order
    norm = Normalizer.from_stats(ds.manifest.stats["action"], "quantile")
    np.testing.assert_allclose(every.values[9 + 2], norm.normalize(ds.episode(1)["action"][8:16]))


def test_chunk_sample_memory_does_not_grow_with_the_dataset(tmp_path):
    import tracemalloc

    from vla_data.bench.synthetic import SyntheticRobotSource

    peaks = []
    for episodes in (10, 160):  # 2,000 vs 32,000 start positions
        convert(SyntheticRobotSource(episodes, 200, camera=False), tmp_path / str(episodes))
        tracemalloc.start()
        chunks = sample_chunks([tmp_path / str(episodes)], ChunkSpec(horizon=10, max_chunks=64))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert chunks.values.shape == (64, 10, 7)
    # listing every start position as Python tuples would add ~2.5 MB at 32,000
    assert peaks[1] < 1.3 * peaks[0] + 64 * 1024, peaks


def test_fit_has_a_default_chunk_budget_and_all_opts_out(dataset, tmp_path):
    result = run("tokenizer", "fit", dataset, "-o", tmp_path / "a", "--horizon", "10", "--max-chunks", "5")
    assert result.exit_code == 0 and "on 5 chunks" in result.output
    result = run("tokenizer", "fit", dataset, "-o", tmp_path / "b", "--horizon", "10", "--max-chunks", "all")
    assert result.exit_code == 0 and "on 93 chunks" in result.output
    result = run("tokenizer", "fit", dataset, "-o", tmp_path / "c", "--horizon", "10", "--max-chunks", "0")
    assert result.exit_code == 2 and "'all'" in result.output
    assert ChunkSpec(horizon=10).max_chunks == DEFAULT_MAX_CHUNKS
    assert f"default {DEFAULT_MAX_CHUNKS}" in " ".join(run("tokenizer", "fit", "--help").output.split())
