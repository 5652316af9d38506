"""HDF5 conversion: conformance on files written by robosuite/robomimic, and files the tests write."""

import json

import h5py
import numpy as np
import pytest

from vla_data.convert import ConvertOptions, convert
from vla_data.errors import SourceError
from vla_data.images import decode_image
from vla_data.shards import ShardDataset, verify_dataset
from vla_data.shards.manifest import MANIFEST_FILE
from vla_data.sources.hdf5 import HDF5Source


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_robomimic_images_png_equal_source_pixels_and_values_exact(shared_data, tmp_path):
    path = shared_data / "hdf5" / "robosuite_lift_robomimic" / "image_84.hdf5"
    manifest = convert(
        HDF5Source.from_paths(path, layout="robomimic"), tmp_path / "out", ConvertOptions(image_format="png")
    )
    ds = ShardDataset(tmp_path / "out")
    assert manifest.num_episodes == 5 and manifest.num_frames == 320
    assert manifest.tasks == ["Lift"] and manifest.fps == 20
    assert verify_dataset(tmp_path / "out") == []
    with h5py.File(path, "r") as f:
        for i in range(5):
            demo = f[f"data/demo_{i + 1}"]
            episode = ds.episode(i)
            assert ds.source_ref(i)["episode"] == f"data/demo_{i + 1}"
            assert episode["action"].dtype == np.float64
            np.testing.assert_array_equal(episode["action"], demo["actions"][()])
            np.testing.assert_array_equal(episode["reward"], demo["rewards"][()])
            np.testing.assert_array_equal(
                episode["observation.robot0_joint_pos"], demo["obs/robot0_joint_pos"][()]
            )
            state = np.concatenate(
                [demo[f"obs/{k}"][()] for k in ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")],
                1,
            )
            np.testing.assert_array_equal(episode["observation.state"], state)
            np.testing.assert_array_equal(episode["frame_index"], np.arange(len(state)))
            np.testing.assert_allclose(episode["timestamp"], np.arange(len(state)) / 20, rtol=1e-6)
            for camera, key in (
                ("agentview", "agentview_image"),
                ("robot0_eye_in_hand", "robot0_eye_in_hand_image"),
            ):
                frames = episode[f"observation.images.{camera}"]
                source = demo[f"obs/{key}"][()]
                assert len(frames) == len(source)
                for t in (0, len(frames) // 2, len(frames) - 1):
                    np.testing.assert_array_equal(decode_image(frames[t]), source[t])


def test_robomimic_jpeg_within_psnr_bound(shared_data, tmp_path):
    path = shared_data / "hdf5" / "robosuite_lift_robomimic" / "image_84.hdf5"
    convert(
        HDF5Source.from_paths(path), tmp_path / "out", ConvertOptions(image_format="jpeg", jpeg_quality=95)
    )
    ds = ShardDataset(tmp_path / "out")
    with h5py.File(path, "r") as f:
        source = f["data/demo_3/obs/agentview_image"][()]
    frames = ds.episode(2)["observation.images.agentview"]
    worst = min(psnr(decode_image(b), s) for b, s in zip(frames, source, strict=True))
    assert worst > 35.0, worst  # JPEG q95 on 84x84 renders


def test_robomimic_demo_without_obs_keeps_float64_and_order(shared_data, tmp_path):
    path = shared_data / "hdf5" / "robosuite_lift_robomimic" / "demo.hdf5"
    manifest = convert(HDF5Source.from_paths(path), tmp_path / "out")
    assert set(manifest.features) == {"action", "sim_state"}
    ds = ShardDataset(tmp_path / "out")
    with h5py.File(path, "r") as f:
        for i in range(5):
            np.testing.assert_array_equal(ds.episode(i)["sim_state"], f[f"data/demo_{i + 1}/states"][()])
    assert manifest.features["action"].dtype == "float64"


def test_user_mapping_orders_demos_numerically(shared_data, tmp_path):
    path = shared_data / "hdf5" / "cart_pendulum_public" / "demo.hdf5"
    source = HDF5Source.from_paths(
        path,
        layout="map",
        mapping={"action": "action", "observation.state": "observation"},
        task="balance the pole",
        fps=50,
    )
    manifest = convert(source, tmp_path / "out", ConvertOptions(dtype="float64"))
    ds = ShardDataset(tmp_path / "out")
    assert manifest.num_episodes == 100 and manifest.tasks == ["balance the pole"]
    assert [ds.source_ref(i)["episode"] for i in (0, 2, 10, 99)] == ["demo_0", "demo_2", "demo_10", "demo_99"]
    with h5py.File(path, "r") as f:
        for i in (0, 2, 10, 99):
            expected = f[f"demo_{i}/observation"][()]
            episode = ds.episode(i)
            assert episode["observation.state"].dtype == np.float64
            np.testing.assert_array_equal(episode["observation.state"], expected.astype(np.float64))


def test_aloha_layout_written_by_test(demo_hdf5, tmp_path):
    source = HDF5Source.from_paths(demo_hdf5, layout="aloha", task="pick up the cube")
    manifest = convert(source, tmp_path / "out", ConvertOptions(image_format="png"))
    ds = ShardDataset(tmp_path / "out")
    assert manifest.fps == 50 and manifest.num_episodes == 3 and len(ds) == 120
    assert manifest.features["observation.images.cam_high"].height == 48
    with h5py.File(demo_hdf5 / "episode_1.hdf5", "r") as f:
        episode = ds.episode(1)
        np.testing.assert_array_equal(episode["action"], f["action"][()])
        np.testing.assert_array_equal(episode["observation.state"], f["observations/qpos"][()])
        np.testing.assert_array_equal(episode["observation.velocity"], f["observations/qvel"][()])
        np.testing.assert_array_equal(
            decode_image(episode["observation.images.cam_left_wrist"][7]),
            f["observations/images/cam_left_wrist"][7],
        )
    step = ds.step(45)  # episode 1, frame 5
    assert step["episode_index"] == 1 and step["frame_index"] == 5


def test_image_size_resizes_with_pad_and_records_original(demo_hdf5, tmp_path):
    source = HDF5Source.from_paths(demo_hdf5, layout="aloha")
    manifest = convert(source, tmp_path / "out", ConvertOptions(image_size=(32, 32), image_format="png"))
    feature = manifest.features["observation.images.cam_high"]
    assert (feature.height, feature.width, feature.original_height, feature.original_width) == (
        32,
        32,
        48,
        64,
    )
    frame = decode_image(ShardDataset(tmp_path / "out").episode(0)["observation.images.cam_high"][0])
    assert frame.shape == (32, 32, 3)
    assert frame[:4].max() == 0 and frame[-4:].max() == 0  # 48x64 -> 24x32 padded top and bottom
    assert frame[16].max() > 0


def _robomimic_file(path, episodes):
    """Write a robomimic/LIBERO-layout file: {demo name: dict of datasets}."""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps({"language_instruction": "put the bowl on the plate"})
        for name, datasets in episodes.items():
            for key, value in datasets.items():
                data.create_dataset(f"{name}/{key}", data=value)


def _good_demo(rng, steps=12):
    return {
        "actions": rng.normal(size=(steps, 7)),
        "obs/ee_pos": rng.normal(size=(steps, 3)),
        "obs/ee_ori": rng.normal(size=(steps, 3)),
        "obs/gripper_states": rng.normal(size=(steps, 2)),
        "obs/agentview_rgb": rng.integers(0, 255, size=(steps, 16, 16, 3), dtype=np.uint8),
    }


def test_libero_style_file_task_and_state(tmp_path):
    rng = np.random.default_rng(0)
    demos = {f"demo_{i}": _good_demo(rng) for i in (0, 1, 2, 10)}
    _robomimic_file(tmp_path / "libero.hdf5", demos)
    manifest = convert(
        HDF5Source.from_paths(tmp_path / "libero.hdf5"), tmp_path / "out", ConvertOptions(image_format="png")
    )
    ds = ShardDataset(tmp_path / "out")
    assert manifest.tasks == ["put the bowl on the plate"]
    assert [ds.source_ref(i)["episode"] for i in range(4)] == [
        "data/demo_0",
        "data/demo_1",
        "data/demo_2",
        "data/demo_10",
    ]
    expected = np.concatenate(
        [demos["demo_10"][k] for k in ("obs/ee_pos", "obs/ee_ori", "obs/gripper_states")], 1
    )
    np.testing.assert_array_equal(ds.episode(3)["observation.state"], expected)
    np.testing.assert_array_equal(
        decode_image(ds.episode(3)["observation.images.agentview"][4]),
        demos["demo_10"]["obs/agentview_rgb"][4],
    )


@pytest.mark.parametrize(
    "break_demo, key, message",
    [
        (lambda d: d.pop("actions"), "actions", "missing dataset"),
        (lambda d: d.update({"obs/ee_pos": d["obs/ee_pos"][:-1]}), "obs/ee_pos", "ragged episode"),
        (lambda d: d["actions"].__setitem__((5, 2), np.nan), "actions", "non-finite value nan at step 5"),
        (lambda d: d["actions"].__setitem__((3, 0), np.inf), "actions", "non-finite value inf at step 3"),
        (lambda d: d.update({"actions": d["actions"][:, :6]}), "action", "differs from (7,)"),
    ],
)
def test_bad_episode_names_file_episode_key_and_leaves_no_manifest(tmp_path, break_demo, key, message):
    rng = np.random.default_rng(1)
    demos = {f"demo_{i}": _good_demo(rng) for i in range(3)}
    break_demo(demos["demo_1"])
    _robomimic_file(tmp_path / "bad.hdf5", demos)
    out = tmp_path / "out"
    with pytest.raises(SourceError) as info:
        convert(HDF5Source.from_paths(tmp_path / "bad.hdf5"), out)
    text = str(info.value)
    assert "bad.hdf5" in text and "data/demo_1" in text and key in text and message in text, text
    assert not (out / MANIFEST_FILE).exists()
    assert not out.exists()  # nothing was committed, nothing is left behind

    manifest = convert(HDF5Source.from_paths(tmp_path / "bad.hdf5"), out, ConvertOptions(on_error="skip"))
    assert manifest.num_episodes == 2
    assert len(manifest.skipped) == 1 and message in manifest.skipped[0]["reason"]
    assert manifest.skipped[0]["source_ref"]["episode"] == "data/demo_1"
    assert ShardDataset(out).source_ref(1)["episode"] == "data/demo_2"


def test_not_hdf5_and_truncated_files(tmp_path, demo_hdf5):
    (tmp_path / "notes.hdf5").write_text("not an hdf5 file")
    with pytest.raises(SourceError, match=r"notes\.hdf5.*cannot be opened as HDF5"):
        convert(HDF5Source.from_paths(tmp_path / "notes.hdf5", layout="aloha"), tmp_path / "out1")
    data = (demo_hdf5 / "episode_0.hdf5").read_bytes()
    (tmp_path / "cut.hdf5").write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"cut\.hdf5"):
        convert(HDF5Source.from_paths(tmp_path / "cut.hdf5", layout="aloha"), tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    # skip mode: the truncated file is listed, the good ones are converted
    files = [demo_hdf5 / "episode_0.hdf5", tmp_path / "cut.hdf5", demo_hdf5 / "episode_2.hdf5"]
    manifest = convert(
        HDF5Source.from_paths([str(f) for f in files], layout="aloha"),
        tmp_path / "out3",
        ConvertOptions(on_error="skip"),
    )
    assert manifest.num_episodes == 2 and "cut.hdf5" in manifest.skipped[0]["reason"]


def test_missing_source_path_is_clear(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        HDF5Source.from_paths(tmp_path / "nowhere.hdf5")


def test_wrong_layout_suggests_the_right_one(demo_hdf5, tmp_path):
    with pytest.raises(SourceError, match=r"episode_0\.hdf5: no 'data' group.*try --layout aloha"):
        convert(HDF5Source.from_paths(demo_hdf5 / "episode_0.hdf5"), tmp_path / "out")


def test_aloha_compressed_jpeg_rows_are_copied(tmp_path):
    """ACT/ALOHA's compressed recordings: each frame a JPEG, zero-padded to the longest, in [T, N] uint8."""
    from vla_data.images import encode_image
    from vla_data.samples import render_frames

    rng = np.random.default_rng(0)
    qpos = rng.normal(0, 0.3, (6, 14))
    frames = render_frames(qpos[:, :2], 48, 64, (200, 30, 30))
    encoded = [encode_image(f, "jpeg", 90) for f in frames]
    padded = np.zeros((6, max(map(len, encoded))), np.uint8)
    for i, data in enumerate(encoded):
        padded[i, : len(data)] = np.frombuffer(data, np.uint8)
    with h5py.File(tmp_path / "episode_0.hdf5", "w") as f:
        f.attrs["compress"] = True
        f["action"] = qpos
        f["observations/qpos"] = qpos
        f["observations/images/cam_high"] = padded
    convert(HDF5Source.from_paths(tmp_path / "episode_0.hdf5", layout="aloha"), tmp_path / "out")
    stored = ShardDataset(tmp_path / "out").episode(0)["observation.images.cam_high"]
    assert stored == encoded  # bytes copied, padding stripped, never re-encoded
