"""The `vla-data` command line, run through click's runner and as a real console script."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from vla_data.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["convert"],
        ["convert", "hdf5"],
        ["info"],
        ["verify"],
        ["stats"],
        ["demo"],
        ["bench"],
        ["bench", "convert"],
    ],
)
def test_every_command_explains_itself(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage: " in result.output and len(result.output.splitlines()) > 4


def test_convert_info_verify_stats(demo_hdf5, tmp_path):
    out = tmp_path / "out"
    result = run(
        "convert",
        "hdf5",
        demo_hdf5,
        out,
        "--layout",
        "aloha",
        "--task",
        "wave",
        "--quiet",
        "--image-format",
        "png",
    )
    assert result.exit_code == 0, result.output
    assert "episodes  3" in result.output and "frames 120" in result.output
    summary = json.loads(run("info", out, "--json").output)
    assert summary["episodes"] == 3 and summary["tasks"] == ["wave"]
    assert summary["features"]["observation.images.cam_high"]["encoding"] == "png"
    assert run("verify", out).output.strip().endswith("OK")
    result = run("stats", out)
    assert result.exit_code == 0 and "action (14 dims, 120 frames)" in result.output


def test_map_options_and_errors_exit_nonzero(tmp_path, demo_hdf5):
    result = run(
        "convert",
        "hdf5",
        demo_hdf5 / "episode_0.hdf5",
        tmp_path / "out",
        "--map",
        "action=observations/missing",
        "--quiet",
    )
    assert result.exit_code == 1
    assert "episode_0.hdf5" in result.output and "observations/missing" in result.output
    assert not (tmp_path / "out").exists()
    result = run("convert", "hdf5", demo_hdf5, tmp_path / "out2", "--map", "action", "--quiet")
    assert result.exit_code != 0 and "NAME=PATH" in result.output


def test_verify_exits_nonzero_on_corruption(demo_hdf5, tmp_path):
    out = tmp_path / "out"
    run("convert", "hdf5", demo_hdf5, out, "--layout", "aloha", "--quiet")
    shard = out / "shards" / "shard-00000.arrow"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = run("verify", out)
    assert result.exit_code == 1 and "sha256" in result.output


def test_console_script_runs_the_demo(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vla_data", "demo", "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "verify: OK" in proc.stdout
    assert (tmp_path / "demo" / "dataset" / "manifest.json").exists()
    assert "compression vs binning" in proc.stdout
    assert (tmp_path / "demo" / "fast_tokenizer" / "tokenizer.json").exists()


def test_compressed_shards_read_back(demo_hdf5, tmp_path):
    from vla_data.shards import ShardDataset

    run("convert", "hdf5", demo_hdf5, tmp_path / "plain", "--layout", "aloha", "--quiet")
    result = run(
        "convert",
        "hdf5",
        demo_hdf5,
        tmp_path / "zstd",
        "--layout",
        "aloha",
        "--quiet",
        "--compression",
        "zstd",
    )
    assert result.exit_code == 0, result.output
    assert (
        json.loads((tmp_path / "zstd" / "manifest.json").read_text())["source"]["convert_options"][
            "compression"
        ]
        == "zstd"
    )
    a, b = ShardDataset(tmp_path / "plain").episode(2), ShardDataset(tmp_path / "zstd").episode(2)
    assert all((a[k] == b[k]) if isinstance(a[k], list) else (a[k] == b[k]).all() for k in a)
    assert run("verify", tmp_path / "zstd").exit_code == 0
