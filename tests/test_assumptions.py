"""No silent assumptions in conversion: a warning line for each assumed value, an error for names
that match nothing, and the RLDS frame rate from the data or from the user."""

import re

import pytest
from click.testing import CliRunner

from vla_data.cli import main
from vla_data.errors import SourceError
from vla_data.samples import write_web_sample
from vla_data.shards import ShardDataset
from vla_data.sources.lerobot import LeRobotSource


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_hdf5_warns_about_assumed_fps_and_empty_tasks(demo_hdf5, tmp_path):
    result = run("convert", "hdf5", demo_hdf5, tmp_path / "a", "--layout", "aloha", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: assuming 50 fps (the aloha layout's default; {demo_hdf5 / 'episode_0.hdf5'} records no "
        "control_freq); give --fps with the robot's control frequency",
        "warning: 3 of 3 episodes have an empty task (no language instruction in the source): their prompts "
        "read 'Task: ;'. Convert again with --task \"...\"",
    ]
    args = ("--layout", "aloha", "--fps", "50", "--task", "wave", "--quiet")
    result = run("convert", "hdf5", demo_hdf5, tmp_path / "b", *args)
    assert result.exit_code == 0 and result.stderr == ""


def test_rlds_fps_is_required_unless_recorded(shared_data, tmp_path):
    root = shared_data / "rlds" / "robosuite_lift_panda_tfds" / "1.0.0"
    result = run("convert", "rlds", root, tmp_path / "a", "--quiet")
    assert result.exit_code == 2 and not (tmp_path / "a").exists()
    assert (
        f"Error: Missing option '--fps': {root}/dataset_info.json records no frame rate; give the robot's "
        "control frequency (e.g. --fps 5 for Bridge, --fps 20 for robosuite)"
    ) in result.output
    assert run("convert", "rlds", root, tmp_path / "b", "--fps", "20", "--quiet").exit_code == 0
    assert ShardDataset(tmp_path / "b").manifest.fps == 20
    copy = tmp_path / "recorded"
    copy.mkdir()
    for path in root.iterdir():
        (copy / path.name).symlink_to(path)
    info = (root / "dataset_info.json").read_text()
    (copy / "dataset_info.json").unlink()
    (copy / "dataset_info.json").write_text(
        info.replace('"name":', '"metadata": {"control_frequency": 20}, "name":', 1)
    )
    assert run("convert", "rlds", copy, tmp_path / "c", "--quiet").exit_code == 0
    assert ShardDataset(tmp_path / "c").manifest.fps == 20


def test_web_kind_is_not_assumed_silently(tmp_path):
    rows = write_web_sample(tmp_path / "raw", samples=4, size=16)
    result = run("convert", "web", rows, tmp_path / "a", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "warning: assuming --kind vqa for every sample; give --kind-field (e.g. --kind-field kind) "
        "or --kind caption|vqa|detection"
    )
    result = run("convert", "web", rows, tmp_path / "b", "--kind-field", "kind", "--quiet")
    assert result.exit_code == 0 and "assuming" not in result.stderr


def test_unknown_drop_camera_is_an_error(shared_data):
    root = shared_data / "lerobot" / "public_v21_unitree_g1"
    message = (
        "--drop-camera 'cam_high' is not an image/video feature; cameras: ['observation.images.cam_high']"
    )
    with pytest.raises(SourceError, match=re.escape(message)):
        LeRobotSource.from_path(root, drop_cameras=("cam_high",)).episode_refs()


def test_rlds_python_api_warns_when_it_assumes_the_fps(shared_data):
    from vla_data.sources.rlds import RLDSSource

    root = shared_data / "rlds" / "robosuite_lift_panda_tfds" / "1.0.0"
    message = f"{root}: dataset_info.json records no frame rate; assuming 10 fps. Give RLDSSource(fps=...)"
    with pytest.warns(UserWarning, match=re.escape(message)):
        assert len(RLDSSource.from_path(root).episode_refs()) == 5
    assert RLDSSource.from_path(root, fps=20).frame_rate == 20.0
