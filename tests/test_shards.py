"""Shard format: readers, size bounds, resume, workers, verification."""

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest

from vla_data.convert import ConvertOptions, convert
from vla_data.errors import FormatVersionError, ShardError
from vla_data.shards import ShardDataset, verify_dataset
from vla_data.shards.manifest import MANIFEST_FILE, PROGRESS_FILE
from vla_data.sources.hdf5 import HDF5Source


@pytest.fixture(scope="module")
def many_episodes(tmp_path_factory):
    from vla_data.samples import write_aloha_sample

    folder = tmp_path_factory.mktemp("many")
    write_aloha_sample(folder, episodes=8, steps=30, height=24, width=32)
    return folder


def shard_hashes(out):
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    return [(s["file"], s["sha256"]) for s in manifest["shards"]]


def test_shards_open_with_pyarrow_and_hf_datasets(demo_hdf5, tmp_path):
    import datasets

    out = tmp_path / "out"
    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha"), out)
    table = pa.ipc.open_file(str(out / "shards" / "shard-00000.arrow")).read_all()
    assert table.num_rows == 120
    assert table.schema.field("action").type == pa.list_(pa.float64(), 14)
    loaded = datasets.load_dataset(
        "arrow", data_files=str(out / "shards" / "*.arrow"), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert loaded.num_rows == 120
    row = loaded[41]
    np.testing.assert_array_equal(row["action"], ShardDataset(out).step(41)["action"])
    assert isinstance(row["observation.images.cam_high"], bytes)


def test_size_bound_closes_shard_after_crossing_episode(many_episodes, tmp_path):
    out = tmp_path / "out"
    manifest = convert(
        HDF5Source.from_paths(many_episodes, layout="aloha"), out, ConvertOptions(shard_bytes=40_000)
    )
    assert len(manifest.shards) > 1
    ds = ShardDataset(out)
    for shard_number, info in enumerate(manifest.shards):
        episodes = np.flatnonzero(ds.episode_shard == shard_number)
        assert info.episodes == len(episodes) >= 1
        assert info.rows == ds.episode_length[episodes].sum()
    for shard in manifest.shards[:-1]:
        assert shard.bytes >= 40_000  # closed only after crossing the target
    np.testing.assert_array_equal(ds.episode(5)["episode_index"], np.full(30, 5))
    assert verify_dataset(out) == []


@dataclass(frozen=True)
class CrashingSource(HDF5Source):
    """Dies (like a killed process would) when it reaches episode `crash_at`."""

    crash_at: int = 0

    def read(self, ref):
        if ref["file"].endswith(f"episode_{self.crash_at}.hdf5"):
            raise KeyboardInterrupt("simulated crash")
        return super().read(ref)


def test_resume_after_interruption_gives_identical_shards(many_episodes, tmp_path):
    options = ConvertOptions(shard_bytes=40_000)
    reference = tmp_path / "reference"
    convert(HDF5Source.from_paths(many_episodes, layout="aloha"), reference, options)

    out = tmp_path / "out"
    paths = HDF5Source.from_paths(many_episodes, layout="aloha").paths
    with pytest.raises(KeyboardInterrupt):
        convert(CrashingSource(paths=paths, layout="aloha", crash_at=6), out, options)
    assert not (out / MANIFEST_FILE).exists() and (out / PROGRESS_FILE).exists()
    with pytest.raises(ShardError, match="--resume"):
        convert(HDF5Source(paths=paths, layout="aloha"), out, options)
    with pytest.raises(ShardError, match="not a vla-data dataset|did not finish"):
        ShardDataset(out)
    # a stray half-written shard from the dead run must not survive
    (out / "shards" / "shard-00009.arrow.tmp").write_bytes(b"partial")
    convert(HDF5Source(paths=paths, layout="aloha"), out, ConvertOptions(shard_bytes=40_000, resume=True))
    assert shard_hashes(out) == shard_hashes(reference)
    assert (out / "episodes.arrow").read_bytes() == (reference / "episodes.arrow").read_bytes()
    assert (
        json.loads((out / MANIFEST_FILE).read_text())["stats"]
        == json.loads((reference / MANIFEST_FILE).read_text())["stats"]
    )
    assert not (out / PROGRESS_FILE).exists()
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted(
        p.name for p in (reference / "shards").iterdir()
    )
    assert verify_dataset(out) == []


def test_resume_with_other_options_is_refused(many_episodes, tmp_path):
    out = tmp_path / "out"
    paths = HDF5Source.from_paths(many_episodes, layout="aloha").paths
    with pytest.raises(KeyboardInterrupt):
        convert(
            CrashingSource(paths=paths, layout="aloha", crash_at=6), out, ConvertOptions(shard_bytes=40_000)
        )
    with pytest.raises(
        ShardError,
        match="cannot --resume the interrupted conversion with other settings: --task was None, now .other.",
    ):
        convert(
            HDF5Source(paths=paths, layout="aloha", task="other"),
            out,
            ConvertOptions(shard_bytes=40_000, resume=True),
        )


def test_two_workers_write_the_same_dataset_as_one(many_episodes, tmp_path):
    source = HDF5Source.from_paths(many_episodes, layout="aloha")
    convert(source, tmp_path / "one", ConvertOptions(shard_bytes=40_000, workers=1))
    convert(source, tmp_path / "two", ConvertOptions(shard_bytes=40_000, workers=2))
    assert shard_hashes(tmp_path / "one") == shard_hashes(tmp_path / "two")


def test_verify_finds_corruption_and_missing_shard(many_episodes, tmp_path):
    out = tmp_path / "out"
    convert(HDF5Source.from_paths(many_episodes, layout="aloha"), out, ConvertOptions(shard_bytes=40_000))
    shard = out / "shards" / "shard-00001.arrow"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    problems = verify_dataset(out)
    assert len(problems) == 1 and "shard-00001.arrow" in problems[0] and "sha256" in problems[0]
    (out / "shards" / "shard-00000.arrow").unlink()
    assert any("shard-00000.arrow: missing" in p for p in verify_dataset(out))


def test_output_folder_rules(demo_hdf5, tmp_path):
    out = tmp_path / "out"
    source = HDF5Source.from_paths(demo_hdf5, layout="aloha")
    convert(source, out)
    with pytest.raises(ShardError, match="already holds a complete dataset"):
        convert(source, out)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ShardError, match="not empty"):
        convert(source, other)
    assert (other / "notes.txt").read_text() == "mine"


def test_unknown_format_version_is_a_dedicated_error(demo_hdf5, tmp_path):
    out = tmp_path / "out"
    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha"), out)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    manifest["format_version"] = 99
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(FormatVersionError, match="format_version 99"):
        ShardDataset(out)


def test_manifest_stats_match_data(demo_hdf5, tmp_path):
    out = tmp_path / "out"
    manifest = convert(HDF5Source.from_paths(demo_hdf5, layout="aloha"), out)
    actions = np.concatenate([ShardDataset(out).episode(i)["action"] for i in range(3)])
    stats = manifest.stats["action"]
    np.testing.assert_allclose(stats["mean"], actions.mean(0), rtol=1e-10, atol=1e-12)
    bound = np.asarray(stats["quantile_error_bound"])
    assert np.all(np.abs(np.asarray(stats["q99"]) - np.quantile(actions, 0.99, axis=0)) <= bound)
    assert "observation.images.cam_high" not in manifest.stats
