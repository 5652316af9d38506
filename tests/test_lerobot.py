"""LeRobot v2.1 / v3.0 conversion on datasets written by lerobot itself and on real public ones."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vla_data.convert import ConvertOptions, convert
from vla_data.errors import SourceError
from vla_data.images import decode_image
from vla_data.samples import write_lerobot_video_sample
from vla_data.shards import ShardDataset
from vla_data.shards.manifest import MANIFEST_FILE
from vla_data.sources.lerobot import LeRobotSource


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def parquet_rows(root, version):
    """Every data row of a dataset, as a table sorted by (episode_index, frame_index)."""
    files = sorted((root / "data").glob("chunk-*/*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    return table.sort_by([("episode_index", "ascending"), ("frame_index", "ascending")])


@pytest.mark.parametrize(
    "name, version", [("v21_image_lerobot033", "v2.1"), ("v30_image_lerobot044", "v3.0")]
)
def test_image_datasets_values_and_image_bytes_identical(shared_data, tmp_path, name, version):
    root = shared_data / "lerobot" / name
    manifest = convert(LeRobotSource.from_path(root), tmp_path / "out")
    ds = ShardDataset(tmp_path / "out")
    rows = parquet_rows(root, version)
    assert manifest.num_frames == rows.num_rows == 320 and manifest.num_episodes == 5 and manifest.fps == 20
    assert manifest.features["action"].names == ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
    start = 0
    for e in range(5):
        data = ds.episode(e)
        length = len(data["action"])
        part = rows.slice(start, length)
        np.testing.assert_array_equal(data["action"], np.array(part.column("action").to_pylist(), np.float32))
        np.testing.assert_array_equal(
            data["observation.state"], np.array(part.column("observation.state").to_pylist(), np.float32)
        )
        np.testing.assert_array_equal(data["timestamp"], part.column("timestamp").to_numpy())
        np.testing.assert_array_equal(data["frame_index"], part.column("frame_index").to_numpy())
        assert data["observation.images.agentview"] == [
            x["bytes"] for x in part.column("observation.images.agentview").to_pylist()
        ]
        assert data["observation.images.wrist"] == [
            x["bytes"] for x in part.column("observation.images.wrist").to_pylist()
        ]
        task_index = part.column("task_index")[0].as_py()
        assert ds.task(e) == ["lift the red cube", "pick up the red block and raise it"][task_index]
        start += length


def test_av1_video_frames_match_pyav_decode(shared_data, tmp_path):
    import av

    root = shared_data / "lerobot" / "v30_video_av1_lerobot044"
    convert(LeRobotSource.from_path(root), tmp_path / "out", ConvertOptions(jpeg_quality=95, workers=2))
    ds = ShardDataset(tmp_path / "out")
    for camera in ("agentview", "wrist"):
        with av.open(
            str(root / "videos" / f"observation.images.{camera}" / "chunk-000" / "file-000.mp4")
        ) as container:
            reference = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(reference) == 320
        stored = [decode_image(b) for e in range(5) for b in ds.episode(e)[f"observation.images.{camera}"]]
        worst = min(psnr(a, b) for a, b in zip(stored, reference, strict=True))
        assert worst > 40.0, (camera, worst)  # JPEG q95 of the decoded frame, same frame order


def test_real_v30_dataset_with_missing_videos_and_odd_keys(shared_data, tmp_path):
    root = shared_data / "lerobot" / "public_v30_dual_arm_open50"
    with pytest.raises(
        SourceError,
        match=r"videos/image/chunk-000/file-001\.mp4, episode 1, key 'image': file listed by the dataset metadata is missing",
    ):
        convert(LeRobotSource.from_path(root), tmp_path / "fail")
    assert not (tmp_path / "fail" / MANIFEST_FILE).exists()
    manifest = convert(
        LeRobotSource.from_path(root, cameras={"image": "front"}),
        tmp_path / "out",
        ConvertOptions(on_error="skip", image_size=(96, 128)),
    )
    ds = ShardDataset(tmp_path / "out")
    kept = [ds.source_ref(e)["episode"] for e in range(ds.num_episodes)]
    assert len(kept) == 3 and len(manifest.skipped) == 47
    assert manifest.features["observation.images.front"].original_height == 480
    rows = parquet_rows(root, "v3.0")
    episode_rows = rows.filter(pa.compute.equal(rows.column("episode_index"), kept[1]))
    np.testing.assert_array_equal(
        ds.episode(1)["action"], np.array(episode_rows.column("actions").to_pylist(), np.float32)
    )
    np.testing.assert_array_equal(
        ds.episode(1)["observation.state"], np.array(episode_rows.column("state").to_pylist(), np.float32)
    )


def test_real_v21_dataset_skip_or_drop_camera(shared_data, tmp_path):
    root = shared_data / "lerobot" / "public_v21_unitree_g1"
    without = convert(
        LeRobotSource.from_path(root, drop_cameras=("observation.images.cam_high",)), tmp_path / "nocam"
    )
    assert without.num_episodes == 100 and without.num_frames == 35965
    assert not any(f.kind == "image" for f in without.features.values())
    ds = ShardDataset(tmp_path / "nocam")
    rows = pq.read_table(root / "data" / "chunk-000" / "episode_000042.parquet")
    np.testing.assert_array_equal(
        ds.episode(42)["observation.state"],
        np.array(rows.column("observation.state").to_pylist(), np.float32),
    )


@pytest.mark.slow
def test_real_v21_dataset_skips_episodes_without_video(shared_data, tmp_path):
    root = shared_data / "lerobot" / "public_v21_unitree_g1"
    manifest = convert(
        LeRobotSource.from_path(root),
        tmp_path / "out",
        ConvertOptions(on_error="skip", image_size=(120, 160)),
    )
    ds = ShardDataset(tmp_path / "out")
    assert [ds.source_ref(e)["episode"] for e in range(ds.num_episodes)] == [1, 2, 4, 5]
    assert len(manifest.skipped) == 96


def test_so101_parquet_only(shared_data, tmp_path):
    root = shared_data / "lerobot" / "public_v30_so101_record_test"
    with pytest.raises(SourceError, match="missing"):
        convert(LeRobotSource.from_path(root), tmp_path / "fail")
    manifest = convert(
        LeRobotSource.from_path(root, drop_cameras=("observation.images.front", "observation.images.top")),
        tmp_path / "out",
    )
    assert manifest.num_episodes == 4 and manifest.num_frames == 1492
    assert manifest.tasks == ["Pick the orange cube and place it in the box"]


def test_unknown_codebase_version_lists_supported(shared_data, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(shared_data / "lerobot" / "v30_image_lerobot044", root)
    info = json.loads((root / "meta" / "info.json").read_text())
    info["codebase_version"] = "v9.9"
    (root / "meta" / "info.json").chmod(0o644)
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(
        SourceError, match=r"codebase_version 'v9.9' is not supported; supported: v2.0, v2.1, v3.0"
    ):
        convert(LeRobotSource.from_path(root), tmp_path / "out")


def test_h264_video_frames_in_order(tmp_path):
    frames = write_lerobot_video_sample(tmp_path / "ds")
    convert(LeRobotSource.from_path(tmp_path / "ds"), tmp_path / "out", ConvertOptions(image_format="png"))
    stored = ShardDataset(tmp_path / "out").episode(1)["observation.images.front"]
    for t in (0, 7, 19):
        image = decode_image(stored[t])
        assert psnr(image, frames[1][t]) > 25  # H.264 crf 18 on a 32x48 high-contrast render
        # the right frame, not a neighbour: the white bar's length identifies it
        neighbour = frames[1][t + 1] if t < 19 else frames[1][t - 1]
        assert psnr(image, frames[1][t]) > psnr(image, neighbour) + 3


def test_video_shorter_than_data_names_episode_camera_timestamp(tmp_path):
    write_lerobot_video_sample(tmp_path / "ds", steps=20, video_frames=15)
    with pytest.raises(
        SourceError,
        match=r"episode 0, key 'observation.images.front': no frame within 50.0 ms of timestamp 1.5000s",
    ):
        convert(LeRobotSource.from_path(tmp_path / "ds"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_v21_images_stored_as_files_next_to_the_parquet(shared_data, tmp_path):
    """Before consolidation lerobot keeps frames as images/<key>/episode_N/frame_M.png and the parquet
    column holds only the path."""
    root = tmp_path / "ds"
    shutil.copytree(shared_data / "lerobot" / "v21_image_lerobot033", root)
    path = root / "data" / "chunk-000" / "episode_000002.parquet"
    path.chmod(0o644)
    table = pq.read_table(path)
    originals = {}
    for key in ("observation.images.agentview", "observation.images.wrist"):
        items = table.column(key).to_pylist()
        originals[key] = [x["bytes"] for x in items]
        paths = []
        for t, item in enumerate(items):
            relative = f"images/{key}/episode_000002/frame_{t:06d}.png"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(item["bytes"])
            paths.append({"bytes": None, "path": relative})
        table = table.set_column(
            table.column_names.index(key), key, pa.array(paths, type=table.schema.field(key).type)
        )
    pq.write_table(table, path)
    convert(LeRobotSource.from_path(root), tmp_path / "out")
    episode = ShardDataset(tmp_path / "out").episode(2)
    assert episode["observation.images.wrist"] == originals["observation.images.wrist"]
    (root / "images" / "observation.images.wrist" / "episode_000002" / "frame_000004.png").unlink()
    with pytest.raises(
        SourceError,
        match=r"episode 2, key 'observation.images.wrist': step 4: image file .*frame_000004.png is missing",
    ):
        convert(LeRobotSource.from_path(root), tmp_path / "out2")
