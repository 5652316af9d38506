"""`vla-data loader check` and the checks make_loader does up front (max_tokens, camera slots)."""

import json
import re

import pytest
from click.testing import CliRunner

from vla_data.cli import main
from vla_data.convert import convert
from vla_data.errors import VlaDataError
from vla_data.loader import LoaderConfig, SourceConfig, make_loader
from vla_data.samples import write_web_sample
from vla_data.sources.hdf5 import HDF5Source
from vla_data.sources.web import WebSource
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

H = 10
CAMERAS = {"base_0_rgb": "cam_high", "left_wrist_0_rgb": None, "right_wrist_0_rgb": "cam_left_wrist"}


@pytest.fixture(scope="module")
def data(demo_hdf5, tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", task="pick", fps=50), root / "robot")
    FastTokenizer.fit(
        sample_chunks([root / "robot"], ChunkSpec(horizon=H)).values, vocab_size=300
    ).save_pretrained(root / "fast")
    convert(
        WebSource(str(write_web_sample(root / "raw_web", samples=8, size=32)), kind_field="kind"),
        root / "web",
    )
    config = LoaderConfig(
        sources=(
            SourceConfig("robot", ("robot",), weight=3, cameras=CAMERAS),
            SourceConfig("web", ("web",), weight=1),
        ),
        fast_tokenizer="fast",
        horizon=H,
        action_dim=16,
        image_size=(32, 32),
        batch_size=4,
        max_tokens=200,
    )
    config.save(root / "loader.json")
    return root


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_loader_check_reports_every_source(data):
    result = run("loader", "check", data / "loader.json", "--json", "--samples", "8")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    robot, web = report["sources"]
    assert (robot["samples"], robot["share"], web["samples"], web["share"]) == (120, 0.75, 8, 0.25)
    assert robot["cameras"] == [CAMERAS] and robot["fast_cache"] == [False] and robot["horizon"] == H
    assert robot["normalization"][0]["action"]["mode"] == "quantile"
    assert len(robot["normalization"][0]["action"]["offset"]) == 14
    assert robot["tokens"]["sample_size"] == 8 and robot["tokens"]["fits"] and report["ok"]
    assert re.fullmatch(
        r"\[prefix\]'<bos>Task: pick, State: [\d ]+;\\n' \[postfix\]'Action: ' \[FAST x\d+\] \[loss\]'\|<eos>'",
        robot["example"],
    ), robot["example"]
    assert web["example"].startswith("[prefix]'<bos>") and web["example"].endswith("<eos>'")
    text = run("loader", "check", data / "loader.json").output
    assert "sources[0] robot" in text and "weight 3 -> 75.0%" in text
    assert (
        "cameras[0]: cam_high -> base_0_rgb, (empty) -> left_wrist_0_rgb, cam_left_wrist -> right_wrist_0_rgb"
        in text
    )


def test_the_cache_gives_the_exact_longest_sequence_and_fails_early(data):
    cached = run("tokenizer", "cache", "--config", data / "loader.json")
    assert cached.exit_code == 0 and cached.stderr == ""  # no progress bar into a pipe or a log
    report = json.loads(run("loader", "check", data / "loader.json", "--json").output)
    robot = report["sources"][0]
    assert robot["fast_cache"] == [True] and robot["tokens"]["cached_steps"] == 120
    longest = robot["tokens"]["longest_cached"]
    assert longest >= robot["tokens"]["longest_in_sample"]
    raw = json.loads((data / "loader.json").read_text())
    (data / "short.json").write_text(json.dumps({**raw, "max_tokens": longest - 1}))
    message = (
        rf"{re.escape(str(data / 'short.json'))}: max_tokens: sources\[0\] {re.escape(str(data / 'robot'))} "
        rf"episode \d+ step \d+: {longest} tokens exceed max_tokens={longest - 1} \(the longest FAST sequence "
        rf"in the cache, \d+ ids\); raise max_tokens to >= {longest} or set truncate"
    )
    with pytest.raises(VlaDataError, match=message):
        make_loader(data / "short.json")
    (data / "short.json").write_text(json.dumps({**raw, "max_tokens": longest}))
    assert len(make_loader(data / "short.json")) > 0


def test_cameras_assigned_in_order_are_announced(data):
    config = LoaderConfig.load(data / "loader.json")
    in_order = LoaderConfig(**{**vars(config), "sources": (SourceConfig("robot", config.sources[0].paths),)})
    expected = (
        f"sources[0] {data / 'robot'}: cameras fill the model's slots in order (cam_high -> base_0_rgb, "
        'cam_left_wrist -> left_wrist_0_rgb); set "cameras": {slot: camera} in the source to choose'
    )
    with pytest.warns(UserWarning, match=re.escape(expected)):
        make_loader(in_order)
