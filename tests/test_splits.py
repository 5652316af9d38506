"""Train / validation splits: kept from RLDS and LeRobot, drawn by `vla-data split --val`, selected
by `split` in a loader source."""

import json
import re

import pytest
from click.testing import CliRunner

from vla_data.cli import main
from vla_data.convert import convert
from vla_data.errors import VlaDataError
from vla_data.loader import LoaderConfig, SourceConfig, make_loader
from vla_data.shards import ShardDataset
from vla_data.sources.hdf5 import HDF5Source
from vla_data.sources.lerobot import LeRobotSource
from vla_data.splits import load_splits, make_split, source_splits
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_rlds_and_lerobot_splits_are_kept(shared_data, tmp_path):
    root = shared_data / "rlds" / "robosuite_lift_panda_tfds" / "1.0.0"
    result = run("convert", "rlds", root, tmp_path / "lift", "--fps", "20", "--quiet")
    assert (
        result.exit_code == 0
        and "splits kept from the source in splits.json: train 4, val 1" in result.output
    )
    assert load_splits(tmp_path / "lift") == {"train": [0, 1, 2, 3], "val": [4]}
    convert(LeRobotSource.from_path(shared_data / "lerobot" / "v21_image_lerobot033"), tmp_path / "lr")
    assert source_splits(ShardDataset(tmp_path / "lr")) == {"train": [0, 1, 2, 3, 4]}


def test_split_command_is_deterministic_by_episode(demo_hdf5, tmp_path):
    out = tmp_path / "ds"
    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", task="t", fps=50), out)
    result = run("split", out)
    assert (
        result.exit_code == 1 and "the source declared no splits; give --val (e.g. --val 5%)" in result.output
    )
    assert (
        run("split", out, "--val", "1").output.strip()
        == f"{out}/splits.json: train 2 episodes, val 1 episodes"
    )
    first = load_splits(out)
    run("split", out, "--val", "34%")
    assert load_splits(out) == first == make_split(3, 1, seed=0)
    assert sorted(first["train"] + first["val"]) == [0, 1, 2]
    assert [make_split(100, 0.05, seed=s)["val"] for s in (0, 0)][0] != make_split(100, 0.05, seed=1)["val"]
    assert len(make_split(100, 0.05)["val"]) == 5
    result = run("split", out, "--val", "150%")
    assert "Error: --val '150%' must be between 0% and 100% (or at least 1 episode)" in result.output
    result = run("split", out, "--val", "3")
    assert "Error: a validation set of 3 episodes leaves none of 3 for training" in result.output


def test_loader_source_selects_a_split(demo_hdf5, tmp_path):
    out = tmp_path / "ds"
    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", task="t", fps=50), out)
    FastTokenizer.fit(sample_chunks([out], ChunkSpec(horizon=10)).values, vocab_size=300).save_pretrained(
        tmp_path / "fast"
    )

    def loader(split):
        config = LoaderConfig(
            sources=(SourceConfig("robot", (str(out),), split=split),),
            fast_tokenizer=str(tmp_path / "fast"),
            horizon=10,
            action_dim=16,
            image_size=(16, 16),
            batch_size=4,
        )
        return make_loader(config)

    with pytest.raises(
        VlaDataError,
        match=re.escape(f"sources[0].split: {out} has no splits.json; run `vla-data split {out}`"),
    ):
        loader("val")
    run("split", out, "--val", "1")
    val = load_splits(out)["val"]
    source = loader("val").sources[0]
    assert len(source) == 40
    episodes = {int(re.search(r"episode (\d+)", source[i]["where"]).group(1)) for i in range(0, 40, 3)}
    assert episodes == set(val)
    assert len(loader("train").sources[0]) == 80
    with pytest.raises(
        VlaDataError,
        match=re.escape(f"sources[0].split: {out} has no split 'test'; splits: ['train', 'val']"),
    ):
        loader("test")
    assert json.loads((out / "splits.json").read_text())["made_by"] == {"val": "1", "seed": 0}
