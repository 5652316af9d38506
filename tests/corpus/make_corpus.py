"""The bad-input corpus: every case is written here by code, never kept as hand-edited binaries.

    python tests/corpus/make_corpus.py DIR      # write every case under DIR/<case>/ to look at

Each case builds its input in a folder and returns the `vla-data` arguments that must fail, and a
regular expression the one-line error must match (file, episode and key named where they exist).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq

from vla_data.images import encode_image
from vla_data.samples import (
    tfds_dict,
    tfds_image,
    tfds_steps,
    tfds_tensor,
    write_aloha_sample,
    write_lerobot_video_sample,
    write_tfds,
)
from vla_data.sources.tfrecord import record_offsets


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], list[str]]  # writes the input under the folder, returns CLI args (OUT last)
    error: str  # regex the error message must match


def _robomimic(path: Path, demos: dict[str, dict[str, np.ndarray]]) -> None:
    with h5py.File(path, "w") as f:
        for name, datasets in demos.items():
            for key, value in datasets.items():
                f.create_dataset(f"data/{name}/{key}", data=value)


def _demo(rng, steps=8, dim=7):
    return {"actions": rng.normal(size=(steps, dim)), "obs/robot0_eef_pos": rng.normal(size=(steps, 3))}


def _hdf5_case(mutate) -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        rng = np.random.default_rng(0)
        demos = {f"demo_{i}": _demo(rng) for i in range(3)}
        mutate(demos["demo_1"])
        _robomimic(folder / "bad.hdf5", demos)
        return ["convert", "hdf5", str(folder / "bad.hdf5"), str(folder / "out")]

    return build


def truncated_hdf5(folder: Path) -> list[str]:
    write_aloha_sample(folder / "src", episodes=1, steps=10, height=8, width=8)
    data = (folder / "src" / "episode_0.hdf5").read_bytes()
    (folder / "cut.hdf5").write_bytes(data[: len(data) // 3])
    shutil.rmtree(folder / "src")
    return ["convert", "hdf5", str(folder / "cut.hdf5"), str(folder / "out"), "--layout", "aloha"]


def not_hdf5(folder: Path) -> list[str]:
    (folder / "notes.hdf5").write_text("these are notes, not HDF5")
    return ["convert", "hdf5", str(folder / "notes.hdf5"), str(folder / "out"), "--layout", "aloha"]


def wrong_dim_mid_dataset(folder: Path) -> list[str]:
    rng = np.random.default_rng(0)
    demos = {"demo_0": _demo(rng), "demo_1": _demo(rng), "demo_2": _demo(rng, dim=6)}
    _robomimic(folder / "mixed.hdf5", demos)
    return ["convert", "hdf5", str(folder / "mixed.hdf5"), str(folder / "out")]


# -- RLDS ------------------------------------------------------------------------------------------
def _tfds(folder: Path, *, image=b"", kind="tensor_feature.Tensor") -> Path:
    root = folder / "toy" / "1.0.0"
    step = {"action": tfds_tensor([2], kind=kind), "observation": tfds_dict({"image": tfds_image(8, 8)})}
    frame = encode_image(np.full((8, 8, 3), 90, np.uint8), "jpeg")
    records = []
    for e in range(3):
        frames = [frame] * 4
        if e == 1 and image:
            frames[2] = image
        records.append({"steps/action": np.ones((4, 2), np.float32) * e, "steps/observation/image": frames})
    write_tfds(root, "toy", {"steps": tfds_steps(step)}, [records])
    return root


def corrupt_tfrecord_crc(folder: Path) -> list[str]:
    root = _tfds(folder)
    path = root / "toy-train.tfrecord-00000-of-00001"
    offsets = [o for o, _ in record_offsets(str(path))]
    data = bytearray(path.read_bytes())
    data[offsets[1] + 20] ^= 0x04
    path.write_bytes(bytes(data))
    return ["convert", "rlds", str(root), str(folder / "out"), "--fps", "10"]


def truncated_tfrecord(folder: Path) -> list[str]:
    root = _tfds(folder)
    path = root / "toy-train.tfrecord-00000-of-00001"
    path.write_bytes(path.read_bytes()[:-7])
    return ["convert", "rlds", str(root), str(folder / "out"), "--fps", "10"]


def _jpeg_frame() -> bytes:
    rng = np.random.default_rng(0)
    return encode_image(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "jpeg")


def corrupt_entropy_jpeg() -> bytes:
    """A JPEG whose every marker segment is intact (so conversion, which copies frames, accepts it)
    but whose entropy-coded data is overwritten: only a decode finds it."""
    data = bytearray(_jpeg_frame())
    scan = data.index(b"\xff\xda")
    start, end = scan + 2 + int.from_bytes(data[scan + 2 : scan + 4], "big"), data.rindex(b"\xff\xd9")
    for i in range(start + 2, end - 2, 3):
        if data[i] != 0xFF and data[i - 1] != 0xFF:  # never create or break a marker
            data[i] = 0x5A
    return bytes(data)


def jpeg_bad_segment_length(folder: Path) -> list[str]:
    data = bytearray(_jpeg_frame())
    table = data.index(b"\xff\xdb")  # the quantisation table segment claims 5 bytes more than it has
    data[table + 3] += 5
    root = _tfds(folder, image=bytes(data))
    return ["convert", "rlds", str(root), str(folder / "out"), "--fps", "10"]


def undecodable_jpeg(folder: Path) -> list[str]:
    from vla_data.convert import convert
    from vla_data.sources.rlds import RLDSSource

    root = _tfds(folder, image=corrupt_entropy_jpeg())
    convert(RLDSSource.from_path(root, fps=10), folder / "dataset")
    return ["verify", "--deep", str(folder / "dataset")]


def unknown_feature_type(folder: Path) -> list[str]:
    root = _tfds(folder, kind="video_feature.Video")
    return ["convert", "rlds", str(root), str(folder / "out"), "--fps", "10"]


# -- LeRobot ---------------------------------------------------------------------------------------
def lerobot_missing_mp4(folder: Path) -> list[str]:
    write_lerobot_video_sample(folder / "ds", episodes=2, steps=10)
    (folder / "ds" / "videos" / "chunk-000" / "observation.images.front" / "episode_000001.mp4").unlink()
    return ["convert", "lerobot", str(folder / "ds"), str(folder / "out")]


def lerobot_short_mp4(folder: Path) -> list[str]:
    write_lerobot_video_sample(folder / "ds", episodes=1, steps=20, video_frames=12)
    return ["convert", "lerobot", str(folder / "ds"), str(folder / "out")]


def lerobot_timestamps_off(folder: Path) -> list[str]:
    write_lerobot_video_sample(folder / "ds", episodes=1, steps=20)
    path = folder / "ds" / "data" / "chunk-000" / "episode_000000.parquet"
    table = pq.read_table(path)
    shifted = table.column("timestamp").to_numpy().copy()
    shifted[5:] += 0.05  # halfway between two frames: beyond the 20 ms tolerance asked for below
    import pyarrow as pa

    pq.write_table(
        table.set_column(table.column_names.index("timestamp"), "timestamp", pa.array(shifted)), path
    )
    return ["convert", "lerobot", str(folder / "ds"), str(folder / "out"), "--tolerance", "0.02"]


def lerobot_unknown_version(folder: Path) -> list[str]:
    write_lerobot_video_sample(folder / "ds", episodes=1, steps=5)
    info_path = folder / "ds" / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["codebase_version"] = "v1.6"
    info_path.write_text(json.dumps(info))
    return ["convert", "lerobot", str(folder / "ds"), str(folder / "out")]


# -- FAST ------------------------------------------------------------------------------------------
def _tokenizer(folder: Path) -> Path:
    from vla_data.tokenizers import FastTokenizer

    t = np.linspace(0, 1, 10)[None, :, None]
    chunks = 0.5 * np.sin(
        2 * np.pi * (np.arange(1, 201)[:, None, None] / 100 * t + np.arange(3)[None, None, :] / 3)
    )
    return FastTokenizer.fit(chunks, vocab_size=256).save_pretrained(folder / "tok")


def _strict_decode(tok: Path, folder: Path) -> list[str]:
    """`vla-data tokenizer decode` of folder/ids.jsonl as 10x3 chunks, raising on the first bad sequence."""
    ids, out = str(folder / "ids.jsonl"), str(folder / "out.npy")
    return [
        "tokenizer",
        "decode",
        str(tok),
        ids,
        "--horizon",
        "10",
        "--action-dim",
        "3",
        "--on-error",
        "raise",
        "-o",
        out,
    ]


def fast_wrong_length(folder: Path) -> list[str]:
    from vla_data.tokenizers import FastTokenizer

    tok = _tokenizer(folder)
    ids = FastTokenizer.from_pretrained(tok).encode(np.zeros((1, 10, 3)))[0]
    (folder / "ids.jsonl").write_text(json.dumps(ids + ids) + "\n")
    return _strict_decode(tok, folder)


def fast_invalid_utf8(folder: Path) -> list[str]:
    from vla_data.tokenizers import FastTokenizer

    # Coefficients up to ~1200 past min_token become 2-byte UTF-8 characters, so the byte-level
    # vocabulary holds tokens that are a lone lead or continuation byte: invalid UTF-8 on their own.
    chunks = np.zeros((8, 10, 3)) + np.linspace(-9, 9, 8)[:, None, None]
    fast = FastTokenizer.fit(chunks, vocab_size=2048, mode="compat")
    tok = fast.save_pretrained(folder / "tok")
    broken = next(i for i in range(fast.bpe.get_vocab_size()) if "\ufffd" in fast.bpe.decode([i]))
    (folder / "ids.jsonl").write_text(json.dumps([broken] * 30) + "\n")
    return _strict_decode(tok, folder)


def fast_surrogate_range(folder: Path) -> list[str]:
    tok = _tokenizer(folder)
    chunk = np.zeros((1, 10, 3))
    chunk[0, :, 0] = 2000.0  # coefficient ~ 63,000 past min_token: U+D800.. surrogates for chr()
    np.save(folder / "chunks.npy", chunk)
    return ["tokenizer", "encode", str(tok), str(folder / "chunks.npy")]


CASES = [
    Case(
        "corrupt_tfrecord_crc",
        corrupt_tfrecord_crc,
        r"toy-train\.tfrecord-00000-of-00001, episode train/1: CRC mismatch in the data of the record at byte offset \d+",
    ),
    Case(
        "truncated_tfrecord",
        truncated_tfrecord,
        r"toy-train\.tfrecord-00000-of-00001, episode train/2: truncated TFRecord",
    ),
    Case("truncated_hdf5", truncated_hdf5, r"cut\.hdf5: cannot be opened as HDF5"),
    Case("not_hdf5", not_hdf5, r"notes\.hdf5: cannot be opened as HDF5"),
    Case(
        "hdf5_missing_key",
        _hdf5_case(lambda d: d.pop("actions")),
        r"bad\.hdf5, episode data/demo_1, key 'actions': missing dataset",
    ),
    Case(
        "hdf5_ragged",
        _hdf5_case(lambda d: d.update({"obs/robot0_eef_pos": d["obs/robot0_eef_pos"][:-2]})),
        r"bad\.hdf5, episode data/demo_1, key 'obs/robot0_eef_pos.*ragged episode",
    ),
    Case(
        "nan_actions",
        _hdf5_case(lambda d: d["actions"].__setitem__((4, 1), np.nan)),
        r"bad\.hdf5, episode data/demo_1, key 'actions \(action\)': non-finite value nan at step 4",
    ),
    Case(
        "inf_actions",
        _hdf5_case(lambda d: d["actions"].__setitem__((2, 0), -np.inf)),
        r"bad\.hdf5, episode data/demo_1, key 'actions \(action\)': non-finite value -inf at step 2",
    ),
    Case(
        "wrong_action_dim_mid_dataset",
        wrong_dim_mid_dataset,
        r"mixed\.hdf5, episode data/demo_2, key 'action': per-step shape \(6,\) differs from \(7,\)",
    ),
    Case(
        "lerobot_missing_mp4",
        lerobot_missing_mp4,
        r"episode_000001\.mp4, episode 1, key 'observation\.images\.front': file listed by the dataset metadata is missing; skip such episodes with --on-error skip, or convert without it with --drop-camera observation\.images\.front",
    ),
    Case(
        "lerobot_mp4_fewer_frames",
        lerobot_short_mp4,
        r"episode_000000\.mp4, episode 0, key 'observation\.images\.front': no frame within 50\.0 ms of timestamp 1\.2000s",
    ),
    Case(
        "lerobot_timestamps_off",
        lerobot_timestamps_off,
        r"episode 0, key 'observation\.images\.front': no frame within 20\.0 ms of timestamp 0\.5500s",
    ),
    Case(
        "lerobot_unknown_version",
        lerobot_unknown_version,
        r"info\.json, key 'codebase_version': codebase_version 'v1\.6' is not supported; supported: v2\.0, v2\.1, v3\.0",
    ),
    Case(
        "jpeg_bad_segment_length",
        jpeg_bad_segment_length,
        r"episode train/1, key 'steps/observation/image \(observation\.images\.image\)': step 2: bytes are not "
        r"a complete JPEG or PNG image: JPEG byte \d+: expected a marker",
    ),
    Case(
        "undecodable_jpeg",
        undecodable_jpeg,
        r"dataset: 1 problem found; the first: shards/shard-00000\.arrow row 6 column "
        r"'observation\.images\.image' \(episode 1, frame 2\): JPEG cannot be decoded cleanly \(Corrupt JPEG data",
    ),
    Case(
        "features_json_unknown_type",
        unknown_feature_type,
        r"features\.json, key 'steps/action': unknown feature type '.*Video'",
    ),
    Case(
        "fast_ids_wrong_length",
        fast_wrong_length,
        r"sequence 0: decoded 60 coefficients, expected horizon\*action_dim = 30",
    ),
    Case(
        "fast_ids_invalid_utf8",
        fast_invalid_utf8,
        r"sequence 0: ids decode to an invalid UTF-8 byte sequence",
    ),
    Case(
        "fast_surrogate_range_coefficients",
        fast_surrogate_range,
        r"chunk 0: DCT coefficient \d+ \(frequency 0, dim 0\) is outside the fitted range",
    ),
]


if __name__ == "__main__":
    target = Path(sys.argv[1])
    for case in CASES:
        folder = target / case.name
        folder.mkdir(parents=True)
        args = case.build(folder)
        print(f"{case.name}: vla-data {' '.join(args)}")
