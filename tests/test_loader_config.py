"""Loader configs: paths relative to the config file, typed settings, errors naming file, source and key."""

import dataclasses
import json
import re
import shutil
from dataclasses import fields

import numpy as np
import pytest

from vla_data.convert import convert
from vla_data.demo import MARKER, clear_demo_folder
from vla_data.errors import VlaDataError
from vla_data.loader import LoaderConfig, SourceConfig, make_loader
from vla_data.samples import write_web_sample
from vla_data.sources.hdf5 import HDF5Source
from vla_data.sources.web import WebSource
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

H = 10


@pytest.fixture(scope="module")
def data(demo_hdf5, tmp_path_factory):
    root = tmp_path_factory.mktemp("config")
    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", task="pick", fps=50), root / "robot")
    chunks = sample_chunks([root / "robot"], ChunkSpec(horizon=H))
    FastTokenizer.fit(chunks.values, vocab_size=300).save_pretrained(root / "fast")
    convert(
        WebSource(str(write_web_sample(root / "raw_web", samples=8, size=32)), kind_field="kind"),
        root / "web",
    )
    return root


def raw_config(**overrides):
    base = {
        "sources": [
            {"kind": "robot", "paths": ["robot"], "weight": 0.7},
            {"kind": "web", "paths": ["web"], "weight": 0.3},
        ],
        "fast_tokenizer": "fast",
        "batch_size": 4,
        "max_tokens": 200,
        "horizon": H,
        "action_dim": 16,
        "image_size": [32, 32],
    }
    return {**base, **overrides}


def write(path, config):
    path.write_text(json.dumps(config))
    return path


def test_relative_paths_resolve_against_the_config_file_from_any_folder(data, tmp_path, monkeypatch):
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    config_path = write(moved / "loader.json", raw_config())
    monkeypatch.chdir(tmp_path)
    config = LoaderConfig.load("moved/loader.json")
    assert config.sources[0].paths == (str(moved / "robot"),)
    assert config.fast_tokenizer == str(moved / "fast")
    loader = make_loader(config_path)
    batch = next(iter(loader))
    assert batch["tokens"].shape[0] == 4


def test_a_missing_path_says_where_it_was_looked_for(data, tmp_path, monkeypatch):
    path = write(data / "bad_paths.json", raw_config(sources=[{"kind": "robot", "paths": ["lift"]}]))
    message = f"{path}: sources[0].paths[0]: no such folder {data / 'lift'} (resolved from 'lift' relative to {data})"
    with pytest.raises(VlaDataError, match=re.escape(message)):
        LoaderConfig.load(path)
    path = write(data / "bad_tok.json", raw_config(fast_tokenizer="fast_tok"))
    with pytest.raises(
        VlaDataError, match=re.escape(f"{path}: fast_tokenizer: no such folder {data / 'fast_tok'}")
    ):
        make_loader(path)
    monkeypatch.chdir(tmp_path)  # a config object resolves against the current folder
    config = LoaderConfig(sources=(SourceConfig("web", ("nowhere",)),))
    with pytest.raises(
        VlaDataError, match=re.escape(f"sources[0].paths[0]: no such folder {tmp_path / 'nowhere'}")
    ):
        make_loader(config)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"sources": [{"kind": "robot", "paths": ["robot"], "camera": {}}]},
            "sources[0]: unknown key 'camera' (did you mean 'cameras'?)",
        ),
        ({"batchsize": 4}, "unknown key 'batchsize' (did you mean 'batch_size'?)"),
        ({"colour": 1}, "unknown key 'colour' (known keys: sources, fast_tokenizer, text_tokenizer"),
        (
            {"sources": [{"kind": "robot", "paths": "lift"}]},
            "sources[0].paths: paths must be a list, got the string 'lift'; write [\"lift\"]",
        ),
        ({"batch_size": "8"}, "batch_size: expected an integer, got '8' (str)"),
        ({"truncate": 1}, "truncate: expected true or false, got 1 (int)"),
        ({"horizon": 0}, "horizon: must be >= 1, got 0"),
        (
            {"mode": "stratifed"},
            "mode: must be one of 'random', 'stratified', got 'stratifed' (did you mean 'stratified'?)",
        ),
        ({"image_size": [32]}, "image_size: expected a list of 2 integer, integer, got (32,) (tuple)"),
        (
            {
                "sources": [
                    {"kind": "web", "paths": ["web"]},
                    {"kind": "robot", "paths": ["robot"], "weight": -1},
                ]
            },
            "sources[1].weight: must be > 0, got -1",
        ),
        (
            {"sources": [{"kind": "robt", "paths": ["robot"]}]},
            "sources[0].kind: must be 'robot' or 'web', got 'robt' (did you mean 'robot'?)",
        ),
        (
            {"sources": [{"paths": ["robot"]}]},
            "sources[0]: missing key 'kind' (every source needs kind and paths)",
        ),
        (
            {"sources": [{"kind": "web", "paths": ["web"], "weight": "1"}]},
            "sources[0].weight: expected a number, got '1' (str)",
        ),
        ({"sources": "robot"}, "sources: must be a list of sources, got 'robot'"),
        ({"delta_action_dims": [0, 40]}, "delta_action_dims: dims [40] are outside 0..action_dim-1 (16)"),
        ({"fast_tokenizer": None}, "fast_tokenizer: robot sources need fast_tokenizer"),
    ],
)
def test_every_config_error_names_the_file_the_source_and_the_key(data, change, message):
    path = write(data / "bad.json", raw_config(**change))
    with pytest.raises(VlaDataError) as error:
        LoaderConfig.load(path)
    assert str(error.value).startswith(f"{path}: {message}"), str(error.value)


def test_errors_without_a_file_name_the_key():
    with pytest.raises(
        VlaDataError, match=re.escape("sources[0].paths: paths must be a list, got the string 'x'")
    ):
        LoaderConfig(sources=[{"kind": "web", "paths": "x"}])
    with pytest.raises(VlaDataError, match=re.escape("batch_size: expected an integer, got 8.0 (float)")):
        LoaderConfig(sources=[SourceConfig("web", ("x",))], batch_size=8.0)


def test_defaults_build_together(data):
    """Only sources and a tokenizer: the byte tokenizer picks the append mapping and batches come."""
    config = LoaderConfig(
        sources=(SourceConfig("robot", (str(data / "robot"),)),), fast_tokenizer=str(data / "fast"), horizon=H
    )
    assert config.fast_mapping == "append"
    batch = next(iter(make_loader(config)))
    assert batch["tokens"].shape[0] == 32 and bool(batch["has_actions"].all())
    assert (
        LoaderConfig(sources=config.sources, fast_tokenizer="x", text_tokenizer="t.json").fast_mapping
        == "tail"
    )


def test_a_dataset_wider_than_the_model_names_dataset_feature_and_setting(data):
    path = write(data / "narrow.json", raw_config(action_dim=4))
    message = (
        f"{path}: action_dim: sources[0] {data / 'robot'}: 'action' has 14 dimensions, more than "
        "action_dim=4; set action_dim >= 14"
    )
    with pytest.raises(VlaDataError, match=re.escape(message)):
        make_loader(path)


def test_tail_mapping_error_names_the_config_key(data):
    config = LoaderConfig(
        sources=(SourceConfig("robot", (str(data / "robot"),)),),
        fast_tokenizer=str(data / "fast"),
        fast_mapping="tail",
    )
    with pytest.raises(VlaDataError, match=re.escape("fast_mapping: tail mapping puts FAST ids at")) as error:
        make_loader(config)
    assert str(error.value).endswith('(in a loader config: "fast_mapping": "append")')


def test_every_setting_is_documented():
    for cls in (LoaderConfig, SourceConfig):
        doc = cls.__doc__.split("Attributes:")[1]
        documented = re.findall(r"^        (\w+): \S", doc, re.MULTILINE)
        assert documented == [f.name for f in fields(cls)], cls


def test_demo_never_deletes_what_it_did_not_write(tmp_path):
    user = tmp_path / "mine"
    (user / "dataset").mkdir(parents=True)
    (user / "dataset" / "precious.txt").write_text("keep")
    with pytest.raises(
        VlaDataError,
        match=re.escape(f"{user}: the folder is not empty and was not written by `vla-data demo`"),
    ):
        clear_demo_folder(user)
    assert (user / "dataset" / "precious.txt").read_text() == "keep"
    demo = tmp_path / "demo"
    clear_demo_folder(demo)  # a new folder: marked as the demo's
    (demo / "web").mkdir()
    (demo / "notes.txt").write_text("mine")
    clear_demo_folder(demo)
    assert (demo / MARKER).exists() and not (demo / "web").exists()
    assert (demo / "notes.txt").read_text() == "mine"


def test_per_source_settings(data):
    from vla_data.tokenizers.text import ByteTokenizer

    robot = str(data / "robot")
    config = LoaderConfig(
        sources=(
            SourceConfig("robot", (robot,), task="{task} slowly", horizon_seconds=0.1, max_episodes=1),
            SourceConfig("robot", (robot,), delta_action_dims=(0, 1)),
            SourceConfig("web", (str(data / "web"),), max_episodes=3),
        ),
        fast_tokenizer=str(data / "fast"),
        horizon=H,
        action_dim=16,
        image_size=(32, 32),
        batch_size=4,
    )
    loader = make_loader(config)
    first, second, web = loader.sources
    assert (len(first), len(second), len(web)) == (40, 120, 3)  # fps 50: 0.1 s is 5 steps
    sample = first[3]
    assert ByteTokenizer().decode(sample["tokens"].tokens.tolist()).startswith("Task: pick slowly, State: ")
    assert sample["actions"].shape == (H, 16) and not sample["action_is_pad"][:5].any()
    assert sample["action_is_pad"][5:].all() and not sample["actions"][5:].any()
    assert "pick slowly" not in ByteTokenizer().decode(second[3]["tokens"].tokens.tolist())
    global_delta = make_loader(
        dataclasses.replace(config, sources=(SourceConfig("robot", (robot,)),), delta_action_dims=(0, 1))
    )
    np.testing.assert_array_equal(second[7]["actions"], global_delta.sources[0][7]["actions"])
    plain = make_loader(dataclasses.replace(config, sources=(SourceConfig("robot", (robot,)),)))
    assert not np.array_equal(second[7]["actions"], plain.sources[0][7]["actions"])
    assert {int(s) for b in zip(range(3), loader, strict=False) for s in b[1]["source"]} <= {0, 1, 2}


@pytest.mark.parametrize(
    "source, message",
    [
        (
            {"kind": "robot", "paths": ["robot"], "horizon_seconds": 1},
            "sources[0].horizon_seconds: 1 s at 50 fps is 50 steps; it must be 1..horizon (10)",
        ),
        ({"kind": "web", "paths": ["web"], "task": "x"}, "sources[0].task: applies to robot sources only"),
        (
            {"kind": "robot", "paths": ["robot"], "max_episodes": 0},
            "sources[0].max_episodes: must be >= 1, got 0",
        ),
        (
            {"kind": "robot", "paths": ["robot"], "delta_action_dims": [16]},
            "sources[0].delta_action_dims: dims [16] are outside 0..action_dim-1 (16)",
        ),
    ],
)
def test_per_source_setting_errors(data, source, message):
    path = write(data / "per_source.json", raw_config(sources=[source]))
    with pytest.raises(VlaDataError, match=re.escape(f"{path}: {message}")):
        make_loader(path)


def test_the_readme_mixture_example_is_a_valid_config():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Configuring a mixture", 1)[1]
    example = json.loads(section.split("```json", 1)[1].split("```", 1)[0])
    config = LoaderConfig.from_dict(example)
    assert [s.kind for s in config.sources] == ["robot", "robot", "web"]
    assert config.sources[0].horizon_seconds == 1.0 and config.sources[1].task == "{task}, widowx"
