"""RLDS without TensorFlow: conformance with what TFDS decodes, CRCs, truncation, gzip, features.json."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from vla_data.convert import ConvertOptions, convert
from vla_data.errors import SourceError
from vla_data.samples import tfds_dict, tfds_image, tfds_steps, tfds_tensor, tfds_text, write_tfds
from vla_data.shards import ShardDataset
from vla_data.shards.manifest import MANIFEST_FILE
from vla_data.sources.example import encode_example, parse_example
from vla_data.sources.rlds import RLDSSource
from vla_data.sources.tfrecord import iter_records, record_offsets, write_records

DATASETS = {"robosuite_lift_panda_tfds": "robosuite_lift_panda", "bridge_v2_debug_public": "bridge_dataset"}


def canonical(feature_path: str) -> str:
    return {"observation/state": "observation.state"}.get(feature_path, feature_path.replace("/", "."))


@pytest.mark.parametrize("name", DATASETS)
def test_values_images_text_equal_what_tfds_decodes(shared_data, tmp_path, name):
    root = shared_data / "rlds" / name / "1.0.0"
    expected = json.loads((shared_data / "rlds" / "expected" / name / "expected.json").read_text())
    arrays = np.load(shared_data / "rlds" / "expected" / name / "expected.npz")
    manifest = convert(RLDSSource.from_path(root), tmp_path / "out")
    ds = ShardDataset(tmp_path / "out")
    episode = 0
    for split, episodes in expected["splits"].items():
        for position, info in enumerate(episodes):
            data = ds.episode(episode)
            ref = ds.source_ref(episode)
            assert ref["episode"] == f"{split}/{position}"
            assert len(data["action"]) == info["n_steps"]
            for feature, spec in expected["features"].items():
                value = data[canonical(feature)]
                target = arrays[f"{split}/{position}/{feature}"]
                assert value.dtype == np.dtype(spec["dtype"]), feature
                np.testing.assert_array_equal(value, target, err_msg=f"{split}/{position}/{feature}")
            for camera, hashes in info["images_sha256"].items():
                frames = data["observation.images." + camera.split("/")[-1]]
                assert [hashlib.sha256(f).hexdigest() for f in frames] == hashes
            assert ds.task(episode) == info["text"]["language_instruction"][0]
            assert ref["metadata"] == info["metadata"]
            episode += 1
    assert manifest.num_episodes == episode


def test_bridge_preset_split_and_map(shared_data, tmp_path):
    root = shared_data / "rlds" / "bridge_v2_debug_public" / "1.0.0"
    manifest = convert(
        RLDSSource.from_path(
            root,
            splits=("val",),
            preset="bridge",
            fps=5,
            mapping={"observation.images.primary": "steps/observation/image_0"},
        ),
        tmp_path / "out",
    )
    assert manifest.num_episodes == 25 and manifest.fps == 5
    cameras = sorted(n for n, f in manifest.features.items() if f.kind == "image")
    assert cameras == [
        "observation.images.image_1",
        "observation.images.image_2",
        "observation.images.primary",
    ]
    assert "language_embedding" not in manifest.features
    assert ShardDataset(tmp_path / "out").source_ref(0)["episode"] == "val/0"


def copy_dataset(shared_data, tmp_path, name="robosuite_lift_panda_tfds"):
    target = tmp_path / name
    shutil.copytree(shared_data / "rlds" / name / "1.0.0", target)
    for path in target.iterdir():
        path.chmod(0o644)
    return target, target / f"{DATASETS[name]}-train.tfrecord-00000-of-00001"


def test_flipped_bit_is_caught_by_the_crc(shared_data, tmp_path):
    root, train = copy_dataset(shared_data, tmp_path)
    offsets = [o for o, _ in record_offsets(str(train))]
    data = bytearray(train.read_bytes())
    data[offsets[2] + 12 + 5000] ^= 0x10  # inside the data of the third episode
    train.write_bytes(bytes(data))
    with pytest.raises(
        SourceError, match=rf"CRC mismatch in the data of the record at byte offset {offsets[2]}"
    ) as info:
        convert(RLDSSource.from_path(root), tmp_path / "out")
    assert "train/2" in str(info.value) and train.name in str(info.value)
    assert not (tmp_path / "out" / MANIFEST_FILE).exists()
    manifest = convert(RLDSSource.from_path(root), tmp_path / "out2", ConvertOptions(on_error="skip"))
    assert manifest.num_episodes == 4
    assert [s["source_ref"]["episode"] for s in manifest.skipped] == ["train/2"]


def test_flipped_bit_in_a_length_is_caught(shared_data, tmp_path):
    root, train = copy_dataset(shared_data, tmp_path)
    offsets = [o for o, _ in record_offsets(str(train))]
    data = bytearray(train.read_bytes())
    data[offsets[1] + 3] ^= 0x01
    train.write_bytes(bytes(data))
    with pytest.raises(
        SourceError, match=rf"CRC mismatch in the length of the record at byte offset {offsets[1]}"
    ):
        convert(RLDSSource.from_path(root), tmp_path / "out")
    manifest = convert(RLDSSource.from_path(root), tmp_path / "out2", ConvertOptions(on_error="skip"))
    assert manifest.num_episodes == 2  # train/0 and the val episode; the rest of that file is unreachable


def test_truncated_file_is_a_clear_error(shared_data, tmp_path):
    root, train = copy_dataset(shared_data, tmp_path)
    data = train.read_bytes()
    train.write_bytes(data[: len(data) - 1000])
    with pytest.raises(
        SourceError, match=r"truncated TFRecord: the record at byte offset \d+ ends past the end of the file"
    ):
        convert(RLDSSource.from_path(root), tmp_path / "out")
    manifest = convert(RLDSSource.from_path(root), tmp_path / "out2", ConvertOptions(on_error="skip"))
    assert manifest.num_episodes == 4 and "truncated" in manifest.skipped[0]["reason"]


def synthetic_tfds(folder, *, compress=False, kind="tensor_feature.Tensor"):
    """A minimal TFDS folder written by this test: 3 episodes, action (2,), state (3,), one PNG camera."""
    from vla_data.images import encode_image

    observation = tfds_dict({"state": tfds_tensor([3], "float64", kind=kind), "cam": tfds_image(8, 8, "png")})
    step = {
        "action": tfds_tensor([2], kind=kind),
        "is_last": tfds_tensor([], "bool", kind=kind),
        "observation": observation,
        "language_instruction": tfds_text(),
    }
    rng = np.random.default_rng(0)
    episodes, records = [], []
    for e in range(3):
        steps = 4 + e
        episode = {
            "action": rng.normal(size=(steps, 2)).astype(np.float32),
            "state": rng.normal(size=(steps, 3)),
            "frames": rng.integers(0, 255, (steps, 8, 8, 3), dtype=np.uint8),
        }
        episodes.append(episode)
        records.append(
            {
                "steps/action": episode["action"],
                "steps/is_last": np.arange(steps) == steps - 1,
                "steps/observation/state": episode["state"],
                "steps/observation/cam": [encode_image(f, "png") for f in episode["frames"]],
                "steps/language_instruction": [f"task {e}".encode()] * steps,
            }
        )
    write_tfds(folder, "toy", {"steps": tfds_steps(step)}, [records], compress=compress)
    return episodes


@pytest.mark.parametrize("compress", [False, True])
def test_written_dataset_plain_and_gzip(tmp_path, compress):
    from vla_data.images import decode_image

    episodes = synthetic_tfds(tmp_path / "toy", compress=compress)
    manifest = convert(RLDSSource.from_path(tmp_path / "toy"), tmp_path / "out")
    ds = ShardDataset(tmp_path / "out")
    assert manifest.tasks == ["task 0", "task 1", "task 2"]
    for e, expected in enumerate(episodes):
        data = ds.episode(e)
        np.testing.assert_array_equal(data["action"], expected["action"])
        assert data["observation.state"].dtype == np.float64  # restored from float32 wire values
        np.testing.assert_array_equal(
            data["observation.state"], expected["state"].astype(np.float32).astype(np.float64)
        )
        assert data["is_last"].tolist() == [False] * (3 + e) + [True]
        np.testing.assert_array_equal(decode_image(data["observation.images.cam"][1]), expected["frames"][1])


def test_unknown_feature_type_names_it(tmp_path):
    synthetic_tfds(tmp_path / "toy", kind="video_feature.Video")
    with pytest.raises(SourceError, match=r"features\.json.*steps/action.*unknown feature type .*Video"):
        convert(RLDSSource.from_path(tmp_path / "toy"), tmp_path / "out")


def test_missing_metadata_and_bad_map(tmp_path):
    with pytest.raises(SourceError, match="TFDS version folder"):
        RLDSSource.from_path(tmp_path).episode_refs()
    synthetic_tfds(tmp_path / "toy")
    with pytest.raises(SourceError, match="--map action=steps/nope: no such feature"):
        RLDSSource.from_path(tmp_path / "toy", mapping={"action": "steps/nope"}).episode_refs()


def test_action_keys_concatenate_with_names(tmp_path):
    episodes = synthetic_tfds(tmp_path / "toy")
    source = RLDSSource.from_path(tmp_path / "toy", action_keys=("steps/action", "steps/observation/state"))
    manifest = convert(source, tmp_path / "out", feature_names=source.feature_names())
    assert manifest.features["action"].names == ("action.0", "action.1", "state.0", "state.1", "state.2")
    action = ShardDataset(tmp_path / "out").episode(1)["action"]
    assert action.shape == (5, 5) and action.dtype == np.float64
    np.testing.assert_array_equal(action[:, :2], episodes[1]["action"])


def test_example_codec_round_trip():
    features = {
        "f": np.array([1.5, -2.25, 3.0], np.float32),
        "i": np.array([0, -1, 2**40, -(2**63)], np.int64),
        "b": [b"", b"\x00\xff", b"abc"],
        "empty": np.zeros(0, np.float32),
    }
    parsed = parse_example(encode_example(features))
    np.testing.assert_array_equal(parsed["f"], features["f"])
    np.testing.assert_array_equal(parsed["i"], features["i"])
    assert parsed["b"] == features["b"] and len(parsed["empty"]) == 0


def test_record_framing_round_trip(tmp_path):
    records = [b"", b"x" * 1000, bytes(range(256))]
    write_records(str(tmp_path / "a.tfrecord"), records)
    assert [d for _, d in iter_records(str(tmp_path / "a.tfrecord"))] == records
    assert [o for o, _ in record_offsets(str(tmp_path / "a.tfrecord"))] == [0, 16, 1032]
