"""The example scripts run as a user would run them."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script, *args):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_convert_custom_hdf5_then_fit_tokenizer(shared_data, tmp_path):
    out = run(
        "convert_custom_hdf5.py",
        shared_data / "hdf5" / "cart_pendulum_public" / "demo.hdf5",
        tmp_path / "out",
    )
    assert "100 episodes, 30000 frames, 0 skipped" in out
    out = run("fit_fast_tokenizer.py", tmp_path / "out", tmp_path / "tok")
    assert "all decoded exactly: True" in out
    assert (tmp_path / "tok" / "tokenizer.json").exists()


def test_train_loop_runs_on_the_demo_loader(tmp_path):
    from vla_data.demo import run_demo

    made = run_demo(tmp_path / "demo", echo=lambda *_: None)
    out = run("train_loop.py", made["loader"], "--steps", "3")
    assert "step 3: loss" in out and "'batch': 3" in out


def test_demo_is_deterministic(tmp_path):
    import json

    from vla_data.demo import run_demo

    hashes = []
    for name in ("one", "two"):
        made = run_demo(tmp_path / name, echo=lambda *_: None)
        manifest = json.loads((made["dataset"] / "manifest.json").read_text())
        hashes.append(
            [s["sha256"] for s in manifest["shards"]] + [(made["tokenizer"] / "tokenizer.json").read_text()]
        )
    assert hashes[0] == hashes[1]
