"""CLI conventions: --json everywhere it matters, Ctrl-C, one-line errors, usage errors that name
what is missing, tokenizer commands that read what the tokenizer knows and refuse to do harm."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vla_data.cli import main
from vla_data.convert import convert
from vla_data.samples import write_aloha_sample
from vla_data.sources.hdf5 import HDF5Source
from vla_data.tokenizers import FastTokenizer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(demo_hdf5, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "ds"
    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", task="t", fps=10), out)
    return out


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def vla_data(*args, env=None, **kwargs):
    """The real command line in a child process (the tree under test first on the path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*(env or []), str(REPO)])}
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    return subprocess.Popen(
        [sys.executable, "-m", "vla_data", *map(str, args)], env=env, **{**streams, **kwargs}
    )


def test_verify_json(dataset, demo_hdf5, tmp_path):
    result = run("verify", dataset, "--json")
    assert result.exit_code == 0 and json.loads(result.output) == {
        "dataset": str(dataset),
        "ok": True,
        "problems": [],
    }
    broken = tmp_path / "broken"
    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", fps=10), broken)
    shard = broken / "shards" / "shard-00000.arrow"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = run("verify", broken, "--json")
    report = json.loads(result.output)
    assert result.exit_code == 1 and report["ok"] is False
    assert any("sha256" in p for p in report["problems"])


def test_stats_shows_every_statistic_of_every_dim(dataset):
    result = run("stats", dataset, "--json")
    stats = json.loads(result.output)
    expected = {
        "count",
        "mean",
        "std",
        "min",
        "max",
        "q01",
        "q10",
        "q50",
        "q90",
        "q99",
        "quantile_error_bound",
    }
    assert set(stats["action"]) == expected and len(stats["action"]["q50"]) == 14
    picked = json.loads(run("stats", dataset, "--json", "--dims", "0:2,5").output)
    assert picked["action"]["dims"] == [0, 1, 5] and picked["action"]["num_dims"] == 14
    assert picked["action"]["q90"] == [stats["action"]["q90"][d] for d in (0, 1, 5)]
    table = run("stats", dataset).output.splitlines()
    start = table.index("action (14 dims, 120 frames)")
    assert table[start + 1].split() == [
        "dim",
        "mean",
        "std",
        "min",
        "max",
        "q01",
        "q10",
        "q50",
        "q90",
        "q99",
        "q_err",
    ]
    assert [line.split()[0] for line in table[start + 2 : start + 16]] == [str(d) for d in range(14)]
    result = run("stats", dataset, "--dims", "0,x")
    assert result.exit_code == 1
    assert "Error: --dims: 'x' is not a dim or start:stop range (e.g. 0,3 or 0:8)" in result.output
    result = run("stats", dataset, "--dims", "20")
    assert "Error: --dims: no feature has dim 20 (the widest has 14: 0..13)" in result.output


def test_ctrl_c_keeps_closed_shards_and_says_how_to_resume(tmp_path):
    raw = tmp_path / "raw"
    write_aloha_sample(raw, episodes=40, steps=100, height=96, width=128)
    out = tmp_path / "out"
    args = (
        "convert",
        "hdf5",
        raw,
        out,
        "--layout",
        "aloha",
        "--fps",
        "50",
        "--task",
        "t",
        "--shard-size",
        "0.5",
    )
    proc = vla_data(*args, "--workers", "2", start_new_session=True)
    deadline = time.monotonic() + 120
    while (
        not list((out / "shards").glob("shard-*.arrow"))
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert proc.poll() is None, "the conversion ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole process group, workers included
    stdout, stderr = proc.communicate(timeout=120)
    kept = len(list((out / "shards").glob("shard-*.arrow")))
    assert proc.returncode == 130, stderr
    assert kept >= 1 and not (out / "manifest.json").exists()
    assert stderr == f"interrupted: {kept} shards kept in {out}; rerun with --resume to continue\n"
    resumed = vla_data(*args, "--resume", "--quiet")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert (
        run("verify", out).exit_code == 0 and json.loads(run("info", out, "--json").output)["episodes"] == 40
    )


def test_a_missing_extra_is_one_line(dataset, demo_hdf5, tmp_path):
    blocked = tmp_path / "blocked"  # packages that fail to import, as when the extra is not installed
    for name in ("matplotlib", "ray"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError({'No module named ' + name!r})\n")
    tokdir = tmp_path / "tok"
    assert (
        run("tokenizer", "fit", dataset, "-o", tokdir, "--horizon", "10", "--vocab-size", "300").exit_code
        == 0
    )
    proc = vla_data("tokenizer", "eval", tokdir, dataset, "--plot", tmp_path / "p.png", env=[str(blocked)])
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and stderr == "Error: --plot needs matplotlib: pip install 'vla-data[viz]'\n"
    proc = vla_data(
        "convert",
        "hdf5",
        demo_hdf5,
        tmp_path / "o",
        "--layout",
        "aloha",
        "--fps",
        "50",
        "--task",
        "t",
        "--executor",
        "ray",
        env=[str(blocked)],
    )
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and stderr == "Error: --executor ray needs Ray: pip install 'vla-data[ray]'\n"


def test_decode_reads_the_tokenizer_and_fails_on_foreign_ids(tmp_path):
    rng = np.random.default_rng(0)
    chunks = np.cumsum(rng.normal(0, 0.05, (400, 10, 7)), axis=1)
    FastTokenizer.fit(chunks, vocab_size=400).save_pretrained(tmp_path / "a")
    FastTokenizer.fit(np.cumsum(rng.normal(0, 0.05, (400, 5, 3)), axis=1), vocab_size=300).save_pretrained(
        tmp_path / "b"
    )
    np.save(tmp_path / "c.npy", chunks[:4])
    ids = run("tokenizer", "encode", tmp_path / "a", tmp_path / "c.npy").output
    result = run("tokenizer", "decode", tmp_path / "a", "-o", tmp_path / "back.npy", input=ids)
    assert result.exit_code == 0 and "4/4 sequences decoded exactly" in result.output
    assert np.load(tmp_path / "back.npy").shape == (4, 10, 7)
    result = run("tokenizer", "decode", tmp_path / "b", input=ids)
    assert result.exit_code == 1
    assert (
        f"Error: 4 of 4 id sequences are not valid for {tmp_path / 'b'} at 5x3 (ids from another tokenizer, "
        "or another horizon / action dim?); their actions are zeros"
    ) in result.output


def test_fit_refuses_a_folder_that_is_not_a_tokenizer(dataset, tmp_path):
    before = sorted(p.name for p in dataset.iterdir())
    result = run("tokenizer", "fit", dataset, "-o", dataset, "--horizon", "10")
    assert result.exit_code == 1
    assert (
        f"Error: {dataset}: not empty and not a FAST tokenizer folder (no processor_config.json; it holds "
        "episodes.arrow, manifest.json, shards); choose an empty or new folder for -o"
    ) in result.output
    assert sorted(p.name for p in dataset.iterdir()) == before
    tokdir = tmp_path / "tok"
    for _ in range(2):  # a tokenizer folder may be replaced
        assert (
            run("tokenizer", "fit", dataset, "-o", tokdir, "--horizon", "10", "--vocab-size", "300").exit_code
            == 0
        )


def test_usage_errors_name_the_missing_argument(tmp_path):
    result = CliRunner().invoke(main, ["convert", "hdf5", "episodes/"])
    assert result.exit_code == 2
    assert (
        "Error: Missing argument 'OUT': give SRC... then OUT, the new dataset folder "
        "(e.g. vla-data convert hdf5 episodes/ episodes_shards/)"
    ) in result.output


def test_errors_list_what_is_there(demo_hdf5, shared_data, tmp_path):
    episode = demo_hdf5 / "episode_0.hdf5"
    result = run(
        "convert", "hdf5", episode, tmp_path / "a", "--map", "action=observations/missing", "--fps", "5"
    )
    assert (
        f"Error: file {episode}, episode /, key 'observations/missing': missing dataset; datasets here: action, "
        "observations/images/cam_high, observations/images/cam_left_wrist, observations/qpos, observations/qvel"
    ) in result.output
    parent = shared_data / "rlds" / "robosuite_lift_panda_tfds"
    result = run("convert", "rlds", parent, tmp_path / "b", "--fps", "20")
    assert f"(<name>/<version>/); version folders in {parent}: 1.0.0" in result.output
    from vla_data.samples import write_web_sample

    rows = write_web_sample(tmp_path / "raw", samples=2, size=16)
    result = run("convert", "web", rows, tmp_path / "c", "--answer-field", "caption", "--kind", "caption")
    assert (
        "no answer (field 'caption'); the row has fields ['answer', 'image', 'kind', 'question']"
        in result.output
    )


def test_progress_bars_only_on_a_terminal(dataset, tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    for command in (("verify", dataset), ("stats", dataset)):
        primary, secondary = pty.openpty()  # stderr is a terminal, as in an interactive shell
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
        proc = vla_data(*command, stderr=secondary)
        proc.stderr = None
        os.close(secondary)
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        proc.wait(timeout=120)
        os.close(primary)
        assert proc.returncode == 0 and f"{command[0]}: 100%".encode() in seen.replace(b"\r", b"\n"), seen
        piped = vla_data(*command)
        _, stderr = piped.communicate(timeout=120)
        assert piped.returncode == 0 and stderr == ""
