"""`bench lerobot`: the generated LeRobot v3.0 AV1 dataset, the timing windows, and the skip message.

LeRobotDataset itself is not installed in CI (see examples/lerobot_venv.sh); the comparison runs
only where `lerobot` imports, and then this file runs it on a tiny dataset."""

import importlib.util
import json
import os

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from vla_data.bench.lerobot import window_rate
from vla_data.bench.lerobot_data import CAMERAS, COMPLETE, TASKS, generated_dataset
from vla_data.cli import main
from vla_data.convert import ConvertOptions, convert
from vla_data.images import decode_image
from vla_data.shards import ShardDataset
from vla_data.sources.lerobot import LeRobotSource

EPISODES, STEPS, FPS = 3, 8, 30


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench_lerobot")
    return generated_dataset(folder, episodes=EPISODES, steps=STEPS, height=64, width=96, fps=FPS)


def video_frames(root, camera):
    path = str(root / "videos" / camera / "chunk-000" / "file-000.mp4")
    with av.open(path) as container:
        assert container.streams.video[0].codec_context.name in ("libdav1d", "av1", "libaom-av1")
        frames = list(container.decode(video=0))
    with av.open(path) as container:
        packets = sorted((p for p in container.demux(video=0) if p.size), key=lambda p: p.pts)
        keyframes = [p.is_keyframe for p in packets]
    return frames, keyframes


def test_generated_dataset_has_lerobot_044_v30_layout(generated):
    info = json.loads((generated / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == EPISODES * STEPS
    assert {c: info["features"][c]["info"]["video.codec"] for c in CAMERAS} == dict.fromkeys(CAMERAS, "av1")
    tasks = pq.read_table(generated / "meta" / "tasks.parquet").to_pandas()  # indexed by task, as lerobot
    assert list(tasks.index) == list(TASKS) and list(tasks["task_index"]) == list(range(len(TASKS)))
    episodes = pq.read_table(generated / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    data = pq.ParquetFile(generated / "data" / "chunk-000" / "file-000.parquet")
    assert data.metadata.num_row_groups == EPISODES  # one row group per episode
    for e, row in enumerate(episodes):
        group = data.read_row_group(e)
        assert set(group.column("episode_index").to_pylist()) == {e}
        assert group.column("index").to_pylist() == list(
            range(row["dataset_from_index"], row["dataset_to_index"])
        )
        for camera in CAMERAS:
            assert row[f"videos/{camera}/from_timestamp"] == pytest.approx(e * STEPS / FPS)
            assert row[f"videos/{camera}/to_timestamp"] == pytest.approx((e + 1) * STEPS / FPS)
    for camera in CAMERAS:
        frames, keyframes = video_frames(generated, camera)
        assert [round(float(f.time) * FPS) for f in frames] == list(range(EPISODES * STEPS))
        assert keyframes == [i % 2 == 0 for i in range(EPISODES * STEPS)]  # g=2, lerobot's default


def test_our_conversion_reads_each_episode_at_its_place_in_the_shared_video(generated, tmp_path):
    convert(LeRobotSource.from_path(generated), tmp_path / "out", ConvertOptions())
    ours = ShardDataset(tmp_path / "out")
    data = pq.read_table(generated / "data" / "chunk-000" / "file-000.parquet")
    assert ours.num_episodes == EPISODES
    for camera in CAMERAS:
        video = np.stack([f.to_ndarray(format="rgb24") for f in video_frames(generated, camera)[0]]).astype(
            int
        )
        for e in range(EPISODES):
            stored = np.stack([decode_image(b) for b in ours.episode(e, [camera])[camera]]).astype(int)
            own = np.abs(stored - video[e * STEPS : (e + 1) * STEPS]).mean()
            assert own < 6, (camera, e, own)  # JPEG q95 of the very frames
            if e:  # one episode earlier in the file would be another trajectory's frames
                other = np.abs(stored - video[(e - 1) * STEPS : e * STEPS]).mean()
                assert other > 3 * own, (camera, e, own, other)
            actions = np.stack(
                data.column("action").to_numpy(zero_copy_only=False)[e * STEPS : (e + 1) * STEPS]
            )
            np.testing.assert_array_equal(ours.episode(e, ["action"])["action"], actions)


def test_generated_dataset_is_reused_and_an_unfinished_one_refused(generated):
    video = generated / "videos" / CAMERAS[0] / "chunk-000" / "file-000.mp4"
    before = os.stat(video).st_mtime_ns
    again = generated_dataset(generated.parent, episodes=EPISODES, steps=STEPS, height=64, width=96, fps=FPS)
    assert again == generated and os.stat(video).st_mtime_ns == before
    marker = (generated / COMPLETE).read_text()
    (generated / COMPLETE).unlink()
    try:
        with pytest.raises(FileExistsError, match=f"{generated}.*delete the folder"):
            generated_dataset(generated.parent, episodes=EPISODES, steps=STEPS, height=64, width=96, fps=FPS)
    finally:
        (generated / COMPLETE).write_text(marker)


class Counted(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n, self.calls = n, 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.calls += 1
        return torch.tensor(i)


def test_window_rate_warms_up_then_times_batches_across_epochs():
    data = Counted(10)  # batches of 4, 4, 2 per epoch; 1 warm-up + 4 timed batches cross an epoch
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    assert window_rate(loader, batches=4, batch_size=4) > 0
    assert data.calls == 10 + 8
    assert window_rate(loader, batches=1, batch_size=4) > 0  # a fresh iterator: the epoch starts over
    assert data.calls == 18 + 8


def test_bench_lerobot_runs_or_says_why_it_skips(generated, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "lerobot",
            "--dataset",
            str(generated),
            "--batches",
            "2",
            "--repeats",
            "1",
            "--batch-size",
            "4",
            "--horizon",
            "4",
            "--dir",
            str(tmp_path),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    if importlib.util.find_spec("lerobot") is None:  # CI: lerobot lives in a separate venv
        assert result.output.startswith("skipped: the `lerobot` package is not importable here")
        assert "examples/lerobot_venv.sh" in result.output and "torch<2.11" in result.output
        return
    lines = result.output.splitlines()
    assert lines[0].startswith(
        f"{generated}: {EPISODES} episodes, {EPISODES * STEPS} frames, 2 cameras 64x96 av1"
    )
    rows = {line.split()[0]: line.split() for line in lines if line.split()[0] in ("0", "2")}
    for n in ("0", "2"):
        theirs, ours, ratio = float(rows[n][1]), float(rows[n][2]), float(rows[n][3].rstrip("x"))
        assert theirs > 0 and ours > 0 and ratio == pytest.approx(ours / theirs, rel=0.05, abs=0.06)
