"""Units of work on any executor, filesystem URIs, and merging converted datasets."""

import json
import os
from dataclasses import dataclass

import numpy as np
import pytest
from click.testing import CliRunner
from pyarrow.fs import LocalFileSystem

from vla_data.cli import main
from vla_data.convert import ConvertOptions, convert, upload_dataset
from vla_data.errors import ShardError
from vla_data.samples import write_aloha_sample
from vla_data.shards import ShardDataset, verify_dataset
from vla_data.shards.manifest import MANIFEST_FILE
from vla_data.shards.merge import STAGING_DIR, merge_datasets
from vla_data.sources.hdf5 import HDF5Source


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale")
    write_aloha_sample(folder, episodes=7, steps=25, height=24, width=32)
    return folder


def manifest_json(out):
    return json.loads((out / MANIFEST_FILE).read_text())


def assert_same_content(a, b):
    """Same episodes, values, images and tasks (shard boundaries may differ)."""
    x, y = ShardDataset(a), ShardDataset(b)
    assert x.num_episodes == y.num_episodes and len(x) == len(y)
    for e in range(x.num_episodes):
        assert x.task(e) == y.task(e)
        ex, ey = x.episode(e), y.episode(e)
        assert set(ex) == set(ey)
        for key in ex:
            if isinstance(ex[key], list):
                assert ex[key] == ey[key], key
            else:
                np.testing.assert_array_equal(ex[key], ey[key], err_msg=key)


def test_local_units_any_worker_count_give_identical_output(episodes, tmp_path):
    source = HDF5Source.from_paths(episodes, layout="aloha")
    convert(source, tmp_path / "one", ConvertOptions(executor="local", unit_episodes=3, workers=1))
    convert(source, tmp_path / "two", ConvertOptions(executor="local", unit_episodes=3, workers=2))
    assert manifest_json(tmp_path / "one") == manifest_json(tmp_path / "two")
    assert not (tmp_path / "one" / STAGING_DIR).exists()
    assert len(manifest_json(tmp_path / "one")["shards"]) == 3  # one shard per unit of 3, 3 and 1 episodes
    convert(source, tmp_path / "stream", ConvertOptions())
    assert_same_content(tmp_path / "one", tmp_path / "stream")
    assert verify_dataset(tmp_path / "one") == []


def test_ray_cluster_gives_the_same_output_as_in_process(episodes, tmp_path):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'vla-data[ray]')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    source = HDF5Source.from_paths(episodes, layout="aloha")
    convert(source, tmp_path / "local", ConvertOptions(executor="local", unit_episodes=2))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        convert(source, tmp_path / "ray", ConvertOptions(executor="ray", unit_episodes=2))
    finally:
        ray.shutdown()
    assert manifest_json(tmp_path / "ray") == manifest_json(tmp_path / "local")
    assert verify_dataset(tmp_path / "ray") == []


@dataclass(frozen=True)
class DiesAt(HDF5Source):
    dies_at: str = ""

    def read(self, ref):
        if ref["file"].endswith(self.dies_at):
            raise KeyboardInterrupt("simulated crash")
        return super().read(ref)


def test_units_resume_redoes_only_unfinished_units(episodes, tmp_path):
    paths = HDF5Source.from_paths(episodes, layout="aloha").paths
    options = ConvertOptions(executor="local", unit_episodes=2)
    convert(HDF5Source(paths=paths, layout="aloha"), tmp_path / "reference", options)
    with pytest.raises(KeyboardInterrupt):
        convert(DiesAt(paths=paths, layout="aloha", dies_at="episode_5.hdf5"), tmp_path / "out", options)
    finished = sorted(
        p.name for p in (tmp_path / "out" / STAGING_DIR).iterdir() if (p / MANIFEST_FILE).exists()
    )
    assert finished == ["unit-00000", "unit-00001"]
    with pytest.raises(ShardError, match="--resume"):
        convert(HDF5Source(paths=paths, layout="aloha"), tmp_path / "out", options)
    convert(
        HDF5Source(paths=paths, layout="aloha"),
        tmp_path / "out",
        ConvertOptions(executor="local", unit_episodes=2, resume=True),
    )
    assert manifest_json(tmp_path / "out") == manifest_json(tmp_path / "reference")


def test_merge_of_two_halves_equals_one_shot(episodes, tmp_path):
    files = HDF5Source.from_paths(episodes, layout="aloha").paths
    convert(HDF5Source(paths=files[:3], layout="aloha", task="first half"), tmp_path / "a")
    convert(HDF5Source(paths=files[3:], layout="aloha", task="second half"), tmp_path / "b")
    whole = [(files[:3], "first half"), (files[3:], "second half")]
    # the one-shot reference: the same episodes and tasks converted together
    from vla_data.convert import convert as run

    class TwoTasks(HDF5Source):
        def read(self, ref):
            episode = super().read(ref)
            episode.task = next(task for paths, task in whole if ref["file"] in paths)
            return episode

    run(TwoTasks(paths=files, layout="aloha"), tmp_path / "once")
    result = CliRunner().invoke(
        main, ["merge", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "merged")]
    )
    assert result.exit_code == 0, result.output
    assert_same_content(tmp_path / "merged", tmp_path / "once")
    merged, once = manifest_json(tmp_path / "merged"), manifest_json(tmp_path / "once")
    assert merged["tasks"] == once["tasks"] == ["first half", "second half"]
    for name, stats in once["stats"].items():
        np.testing.assert_allclose(merged["stats"][name]["mean"], stats["mean"], rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(merged["stats"][name]["max"], stats["max"])
        bound = np.maximum(stats["quantile_error_bound"], merged["stats"][name]["quantile_error_bound"])
        assert np.all(np.abs(np.subtract(merged["stats"][name]["q99"], stats["q99"])) <= 2 * bound)
    assert verify_dataset(tmp_path / "merged") == []


def test_merge_refuses_incompatible_datasets(episodes, tmp_path):
    files = HDF5Source.from_paths(episodes, layout="aloha").paths
    convert(HDF5Source(paths=files[:2], layout="aloha"), tmp_path / "a")
    convert(HDF5Source(paths=files[2:4], layout="aloha", fps=10), tmp_path / "b")
    with pytest.raises(ShardError, match="fps 10.0 differs from 50.0"):
        merge_datasets([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    convert(HDF5Source(paths=files[2:4], layout="aloha"), tmp_path / "c", ConvertOptions(dtype="float32"))
    with pytest.raises(ShardError, match="features differ"):
        merge_datasets([tmp_path / "a", tmp_path / "c"], tmp_path / "out2")


def test_file_uri_end_to_end(episodes, tmp_path):
    uri = f"file://{tmp_path}/out"
    convert(HDF5Source.from_paths(f"file://{episodes}", layout="aloha"), uri)
    remote, local = ShardDataset(uri), ShardDataset(tmp_path / "out")
    assert remote.uri == uri and remote.num_episodes == 7
    for e in (0, 4, 6):  # read through the filesystem one record batch per episode
        a, b = remote.episode(e), local.episode(e)
        assert all(np.array_equal(a[k], b[k]) if not isinstance(a[k], list) else a[k] == b[k] for k in a)
    assert json.loads(CliRunner().invoke(main, ["info", uri, "--json"]).output)["episodes"] == 7


def test_upload_to_a_filesystem_then_read_it_back(episodes, tmp_path):
    convert(HDF5Source.from_paths(episodes, layout="aloha"), tmp_path / "local")
    upload_dataset(tmp_path / "local", LocalFileSystem(), str(tmp_path / "bucket" / "dataset"))
    assert verify_dataset(tmp_path / "bucket" / "dataset") == []
    remote = ShardDataset(f"file://{tmp_path}/bucket/dataset")
    np.testing.assert_array_equal(
        remote.step(60)["action"], ShardDataset(tmp_path / "local").step(60)["action"]
    )


def test_loader_reads_uri_sources(episodes, tmp_path):
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    convert(HDF5Source.from_paths(episodes, layout="aloha"), tmp_path / "robot")
    FastTokenizer.fit(
        sample_chunks([tmp_path / "robot"], ChunkSpec(horizon=5)).values, vocab_size=300
    ).save_pretrained(tmp_path / "fast")
    config = LoaderConfig(
        sources=(SourceConfig("robot", (f"file://{tmp_path}/robot",)),),
        fast_tokenizer=str(tmp_path / "fast"),
        fast_mapping="append",
        batch_size=4,
        horizon=5,
        image_size=(16, 16),
    )
    batch = next(iter(make_loader(config)))
    assert batch["actions"].shape == (4, 5, 32) and batch["has_actions"].all()
