"""Conversions users can trust (issue 13): every numeric value checked, every reader failure named
and skippable, FAST ids inside the vocabulary they are mapped with, and checks that can fail."""

import json

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from vla_data.cli import main
from vla_data.errors import ShardError, VlaDataError
from vla_data.samples import write_aloha_sample, write_lerobot_video_sample
from vla_data.shards.manifest import PROGRESS_FILE, write_json_atomic


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def strict_json(path):
    """Parse as every strict JSON parser does: NaN/Infinity are not JSON."""

    def refuse(constant):
        raise ValueError(f"{path} holds a bare {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def last_line(result):
    return result.output.strip().splitlines()[-1]


# -- item 2: NaN / inf in every numeric feature, strict JSON manifest ------------------------------
@pytest.fixture
def aloha_nan_qvel(tmp_path):
    src = tmp_path / "src"
    write_aloha_sample(src, episodes=3, steps=12, height=16, width=16)
    with h5py.File(src / "episode_1.hdf5", "r+") as f:
        qvel = f["observations/qvel"][()]
        qvel[5, 3] = np.nan
        f["observations/qvel"][...] = qvel
    return src


def test_nan_in_any_numeric_feature_is_an_error_naming_it(aloha_nan_qvel, tmp_path):
    result = run("convert", "hdf5", aloha_nan_qvel, tmp_path / "out", "--layout", "aloha", "--quiet")
    assert result.exit_code == 1
    assert (
        "episode_1.hdf5, episode /, key 'observations/qvel (observation.velocity)': non-finite value nan at step 5"
        in (last_line(result))
    )
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_nan_episode_skipped_and_manifest_is_strict_json(aloha_nan_qvel, tmp_path):
    out = tmp_path / "out"
    result = run("convert", "hdf5", aloha_nan_qvel, out, "--layout", "aloha", "--quiet", "--on-error", "skip")
    assert result.exit_code == 0, result.output
    manifest = strict_json(out / "manifest.json")
    assert [s["source_ref"]["file"].endswith("episode_1.hdf5") for s in manifest["skipped"]] == [True]
    velocity = manifest["stats"]["observation.velocity"]
    assert velocity["count"] == 24 and all(np.isfinite(velocity["mean"] + velocity["std"]))


def test_json_writer_refuses_nan_naming_where(tmp_path):
    with pytest.raises(ShardError, match=r"stats\.observation\.velocity\.mean\[1\] is NaN or infinite"):
        write_json_atomic(
            tmp_path / "m.json", {"stats": {"observation.velocity": {"mean": [0.0, float("nan")]}}}
        )
    assert not (tmp_path / "m.json").exists()


# -- item 4: any reader failure is one named, skippable error --------------------------------------
@pytest.fixture
def lerobot_with_null(tmp_path):
    root = tmp_path / "ds"
    write_lerobot_video_sample(root, episodes=3, steps=10)
    path = root / "data" / "chunk-000" / "episode_000001.parquet"
    table = pq.read_table(path)
    actions = table.column("action").to_pylist()
    actions[4] = None
    table = table.set_column(0, "action", pa.array(actions, pa.list_(pa.float32())))
    pq.write_table(table, path)
    return root


def test_lerobot_null_names_file_episode_key_step(lerobot_with_null, tmp_path):
    result = run("convert", "lerobot", lerobot_with_null, tmp_path / "out", "--quiet")
    assert result.exit_code == 1
    assert "episode_000001.parquet, episode 1, key 'action': null value at step 4" in last_line(result)


def test_lerobot_null_is_skippable(lerobot_with_null, tmp_path):
    out = tmp_path / "out"
    result = run("convert", "lerobot", lerobot_with_null, out, "--quiet", "--on-error", "skip")
    assert result.exit_code == 0, result.output
    manifest = strict_json(out / "manifest.json")
    assert len(manifest["skipped"]) == 1 and "null value at step 4" in manifest["skipped"][0]["reason"]
    assert sum(s["episodes"] for s in manifest["shards"]) == 2


def test_hdf5_map_to_a_group_names_the_key(tmp_path):
    src = tmp_path / "src"
    write_aloha_sample(src, episodes=2, steps=8, height=16, width=16)
    args = ("convert", "hdf5", src, tmp_path / "out", "--map", "action=observations", "--quiet")
    result = run(*args)
    assert result.exit_code == 1
    assert "episode_0.hdf5, episode /, key 'observations': is a group, not a dataset" in last_line(result)
    result = run(*args[:-1], "--on-error", "skip", "--quiet")
    assert result.exit_code == 1 and "no episode was converted" in last_line(result)
    assert "is a group, not a dataset" in last_line(result)


def test_unexpected_reader_exception_becomes_a_source_error():
    from vla_data.convert import ConvertOptions, _read_prepared

    class Broken:
        def read(self, ref):
            return np.zeros(15).reshape(6, -1)  # the kind of numpy error a reader can hit

    error = _read_prepared(Broken(), {"file": "data/x.parquet", "episode": 3}, ConvertOptions())
    assert "file data/x.parquet, episode 3: the reader failed with ValueError: cannot reshape" in str(error)


# -- item 6: FAST ids beyond the requested vocab_size -------------------------------------------------
@pytest.fixture(scope="module")
def small_compat_fast():
    """compat FAST over a ~230-symbol range with vocab_size 256: byte-level BPE keeps its whole
    alphabet, so the real vocabulary is larger than 256."""
    from vla_data.tokenizers import FastTokenizer

    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 10)[None, :, None]
    phases = rng.uniform(0.5, 2, (300, 1, 3)) * t + rng.uniform(0, 1, (300, 1, 3))
    chunks = 4.9 * np.sin(2 * np.pi * phases) * rng.uniform(0.2, 1.0, (300, 1, 3))
    fast = FastTokenizer.fit(chunks, vocab_size=256, mode="compat")
    return fast, max(max(ids) for ids in fast.encode(chunks)), chunks


def test_compat_fast_real_vocab_size_is_used_by_the_loader(small_compat_fast, demo_hdf5, tmp_path):
    from vla_data.convert import convert
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.sources.hdf5 import HDF5Source

    fast, largest, _ = small_compat_fast
    assert largest >= fast.vocab_size  # the case of the issue: ids past the requested size
    assert fast.bpe_vocab_size > largest
    fast.save_pretrained(tmp_path / "fast")
    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", task="wave"), tmp_path / "robot")
    config = LoaderConfig(
        sources=(SourceConfig("robot", (str(tmp_path / "robot"),)),),
        fast_tokenizer=str(tmp_path / "fast"),
        fast_mapping="append",
        batch_size=4,
        horizon=10,
        action_dim=16,
        image_size=(16, 16),
    )
    prompt = make_loader(config).prompt
    assert prompt.fast_to_text_ids(np.array([largest]))[0] < prompt.total_vocab_size
    assert prompt.total_vocab_size == prompt.text.vocab_size + fast.bpe_vocab_size


def test_tail_overlap_guard_covers_the_real_id_range(small_compat_fast):
    from vla_data.tokenizers.prompt import PromptBuilder
    from vla_data.tokenizers.text import ByteTokenizer

    fast, _, _ = small_compat_fast
    # 259 + 128 + 256 + 10: clear of the byte tokens for 256 ids, not for the real vocabulary
    text = ByteTokenizer(vocab_size=653)
    with pytest.raises(VlaDataError, match="overlapping the text vocabulary"):
        PromptBuilder(text, fast.bpe_vocab_size, mapping="tail", skip=128)


# -- item 9: checks that can fail ---------------------------------------------------------------------
def test_bench_loader_counts_dataloader_workers_only(demo_hdf5, tmp_path):
    from multiprocessing import resource_tracker

    from vla_data.bench.loader import _children_rss_mb
    from vla_data.convert import convert
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.sources.hdf5 import HDF5Source
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    resource_tracker.ensure_running()  # a child process that is not a DataLoader worker
    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", task="wave"), tmp_path / "robot")
    chunks = sample_chunks([tmp_path / "robot"], ChunkSpec(horizon=10))
    FastTokenizer.fit(chunks.values, vocab_size=300).save_pretrained(tmp_path / "fast")
    config = LoaderConfig(
        sources=(SourceConfig("robot", (str(tmp_path / "robot"),)),),
        fast_tokenizer=str(tmp_path / "fast"),
        fast_mapping="append",
        batch_size=4,
        horizon=10,
        action_dim=16,
        image_size=(16, 16),
        num_workers=2,
        persistent_workers=True,
    )
    iterator = iter(make_loader(config))
    next(iterator)
    assert len(_children_rss_mb()) == 2
    del iterator


def test_fast_decode_agrees_with_an_independent_decode(small_compat_fast):
    """Decode (flag mode) against a decode written here from the definition: the BPE string, its
    code points + min_token, the range and length checks, the inverse DCT, then the bound. Mutated
    real sequences reach every branch, not only the zeroing filter."""
    from scipy.fft import idct

    fast, _, fitted = small_compat_fast
    rng = np.random.default_rng(1)
    chunks = fitted[:60]  # every symbol was seen in training, so they round-trip
    sequences = fast.encode(chunks)
    for ids in list(sequences):
        mutated = list(ids)
        mutated[rng.integers(len(ids))] = int(rng.integers(0, fast.bpe_vocab_size))
        sequences.append(mutated)
    # every coefficient at the edge of the range: in range, right length, far beyond the bound
    edge = "".join(chr(fast.max_token - fast.min_token) for _ in range(30))
    sequences.append(fast.bpe.encode(edge).ids)
    actions, valid = fast.decode(sequences, horizon=10, action_dim=3, on_error="flag")
    outcomes = {"ok": 0, "bound": 0, "other": 0}
    for b, ids in enumerate(sequences):
        codes = [ord(c) for c in fast.bpe.decode(ids, skip_special_tokens=False)]
        values = np.array(codes, np.float64) + fast.min_token
        if len(codes) != 30 or 0xFFFD in codes or values.max() > fast.max_token:
            expected_valid, expected = False, np.zeros((10, 3))
            outcomes["other"] += 1
        else:
            raw = idct(values.reshape(10, 3) / fast.scale, type=2, axis=0, norm="ortho")
            expected_valid = bool(np.abs(raw).max() <= fast.action_bound)
            expected = raw if expected_valid else np.zeros((10, 3))
            outcomes["ok" if expected_valid else "bound"] += 1
        assert valid[b] == expected_valid, (b, ids)
        np.testing.assert_allclose(actions[b], expected, atol=1e-12)
    assert outcomes["ok"] >= 60 and outcomes["bound"] >= 1 and outcomes["other"] >= 1, outcomes
    # real chunks decode to themselves, not zeros: T coefficients rounded by <= 0.5 / scale each,
    # spread by the orthonormal inverse DCT (|basis| <= sqrt(2 / T))
    assert np.abs(actions[:60] - chunks).max() <= 10 * 0.05 * np.sqrt(2 / 10)
    with pytest.raises(VlaDataError, match="sequence 60: decoded action exceeds"):
        fast.decode(sequences[:60] + sequences[-1:], horizon=10, action_dim=3, on_error="raise")


def test_crop_keeps_the_centre_of_the_frame():
    from vla_data.images import resize

    ys, xs = np.mgrid[0:480, 0:640]
    frame = np.stack([xs * 255 // 639, ys * 255 // 479, 255 - xs * 255 // 639], -1).astype(np.uint8)
    cropped = resize(frame, 224, 224, "crop").astype(int)
    centre = np.asarray(Image.fromarray(frame[:, 80:560]).resize((224, 224), Image.BILINEAR)).astype(int)
    left = np.asarray(Image.fromarray(frame[:, :480]).resize((224, 224), Image.BILINEAR)).astype(int)
    assert np.abs(cropped - centre).mean() < 1.5
    assert np.abs(cropped - left).mean() > 20  # the check can tell a wrong crop offset


# -- item 1: resume only with the settings a conversion was started with ---------------------------
def aloha_args(src, out, *extra):
    return ("convert", "hdf5", src, out, "--layout", "aloha", "--quiet", *extra)


@pytest.fixture
def interrupted_units(tmp_path):
    """7 episodes converted in units of 2; episode 5 has a NaN action, so units 0 and 1 finish and
    the run stops in unit 2. The NaN is then repaired, as a user would before resuming."""
    src = tmp_path / "src"
    write_aloha_sample(src, episodes=7, steps=10, height=16, width=16)
    with h5py.File(src / "episode_5.hdf5", "r+") as f:
        good = f["action"][()]
        bad = good.copy()
        bad[3, 0] = np.nan
        f["action"][...] = bad
    out = tmp_path / "out"
    result = run(*aloha_args(src, out, "--executor", "local", "--unit-episodes", "2"))
    assert result.exit_code == 1 and "episode_5.hdf5" in last_line(result)
    with h5py.File(src / "episode_5.hdf5", "r+") as f:
        f["action"][...] = good
    return src, out


def test_units_resume_with_another_unit_size_is_refused(interrupted_units):
    src, out = interrupted_units
    for size in ("3", "1"):
        result = run(*aloha_args(src, out, "--executor", "local", "--unit-episodes", size, "--resume"))
        assert result.exit_code == 1
        assert f"--unit-episodes was 2, now {size}" in last_line(result)
    result = run(*aloha_args(src, out, "--executor", "local", "--unit-episodes", "2", "--resume"))
    assert result.exit_code == 0, result.output
    assert strict_json(out / "manifest.json")["shards"] and run("verify", out).exit_code == 0
    assert json.loads(run("info", out, "--json").output)["episodes"] == 7


def test_units_resume_with_another_jpeg_quality_is_refused(interrupted_units):
    src, out = interrupted_units
    result = run(
        *aloha_args(
            src, out, "--executor", "local", "--unit-episodes", "2", "--resume", "--jpeg-quality", "80"
        )
    )
    assert result.exit_code == 1
    assert "--jpeg-quality was 95, now 80" in last_line(result)
    assert "image_format" not in last_line(result)  # the one setting that differs, not the whole dict


def write_robomimic(path, demos):
    with h5py.File(path, "w") as f:
        for name, actions in demos.items():
            f.create_dataset(f"data/{name}/actions", data=actions)


def test_units_resume_after_the_source_changed_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    demos = {f"demo_{i}": rng.normal(size=(6, 3)) for i in range(6)}
    broken = {**demos, "demo_4": np.where(np.arange(3) == 1, np.nan, demos["demo_4"])}
    write_robomimic(tmp_path / "demos.hdf5", broken)
    args = ("convert", "hdf5", tmp_path / "demos.hdf5", tmp_path / "out", "--executor", "local")
    args += ("--unit-episodes", "2", "--quiet")
    assert run(*args).exit_code == 1
    del demos["demo_0"]  # the source file is rewritten between the runs
    write_robomimic(tmp_path / "demos.hdf5", demos)
    result = run(*args, "--resume")
    assert result.exit_code == 1
    assert "unit-00000 converted 2 episodes" in last_line(result) and "the source changed" in last_line(
        result
    )
    assert "data/demo_0 .. " in last_line(result)


@pytest.mark.parametrize("executor", ["stream", "local"])
def test_resume_of_a_finished_conversion_with_other_settings_is_refused(tmp_path, executor):
    src = tmp_path / "src"
    write_aloha_sample(src, episodes=2, steps=8, height=16, width=16)
    other = tmp_path / "other"
    write_aloha_sample(other, episodes=3, steps=8, height=16, width=16)
    out = tmp_path / "out"
    base = ("--executor", executor, "--task", "wave")
    assert run(*aloha_args(src, out, *base)).exit_code == 0
    manifest = (out / "manifest.json").read_bytes()
    assert run(*aloha_args(src, out, *base, "--resume")).exit_code == 0  # same settings: a no-op
    for extra, named in [
        (("--task", "fold"), "--task was 'wave', now 'fold'"),
        (("--image-size", "8"), "--image-size was None, now [8, 8]"),
    ]:
        result = run(*aloha_args(src, out, *base, *extra, "--resume"))
        assert result.exit_code == 1 and named in last_line(result), result.output
    result = run(*aloha_args(other, out, *base, "--resume"))
    assert result.exit_code == 1 and "SRC (path) was" in last_line(result)
    assert (out / "manifest.json").read_bytes() == manifest


def test_stream_resume_with_another_option_names_it(tmp_path):
    src = tmp_path / "src"
    write_aloha_sample(src, episodes=4, steps=40, height=32, width=32)
    with h5py.File(src / "episode_3.hdf5", "r+") as f:
        f["action"][2, 0] = np.inf
    out = tmp_path / "out"
    result = run(*aloha_args(src, out, "--shard-size", "0.01"))
    assert result.exit_code == 1 and (out / PROGRESS_FILE).exists()
    result = run(*aloha_args(src, out, "--shard-size", "0.01", "--resume", "--jpeg-quality", "70"))
    assert result.exit_code == 1 and "--jpeg-quality was 95, now 70" in last_line(result)


def test_resume_into_a_missing_folder_says_it_starts_fresh(tmp_path):
    from vla_data.convert import ConvertOptions, convert
    from vla_data.sources.hdf5 import HDF5Source

    write_aloha_sample(tmp_path / "src", episodes=1, steps=8, height=16, width=16)
    source = HDF5Source.from_paths(tmp_path / "src", layout="aloha")
    with pytest.warns(UserWarning, match="does not exist, so there is nothing to resume; starting a fresh"):
        manifest = convert(source, tmp_path / "out", ConvertOptions(resume=True))
    assert manifest.num_episodes == 1


# -- item 5: the JPEG segment walk at conversion, `verify --deep` ----------------------------------
def test_conversion_walks_jpeg_segments_where_the_old_marker_check_passed():
    from tests.corpus.make_corpus import _jpeg_frame, corrupt_entropy_jpeg
    from vla_data.frame_check import decode_problem, structure_problem
    from vla_data.images import decode_image, looks_complete

    bad_length = bytearray(_jpeg_frame())
    bad_length[bad_length.index(b"\xff\xdb") + 3] += 5
    assert looks_complete(bytes(bad_length))  # SOI and a final EOI: the old check let it through
    assert "expected a marker" in structure_problem(bytes(bad_length))
    cut = _jpeg_frame()[:-40] + b"\xff\xd9"  # truncated entropy data, EOI appended: still a whole structure
    assert structure_problem(cut) is None
    corrupt = corrupt_entropy_jpeg()
    assert structure_problem(corrupt) is None and decode_image(corrupt).shape == (8, 8, 3)  # PIL: silent
    assert "Corrupt JPEG data" in decode_problem(corrupt)
    png = encode_png_frame()
    assert structure_problem(png) is None and "CRC mismatch" in structure_problem(
        png[:40] + b"\x00" + png[41:]
    )


def encode_png_frame():
    from vla_data.images import encode_image

    return encode_image(np.full((8, 8, 3), 7, np.uint8), "png")


def test_verify_deep_names_the_first_bad_frame_per_camera(tmp_path):
    from tests.corpus.make_corpus import _jpeg_frame, corrupt_entropy_jpeg

    good, bad = _jpeg_frame(), corrupt_entropy_jpeg()
    frames = [good, good, good, bad, good, bad]
    rows = np.zeros((6, max(len(good), len(bad))), np.uint8)  # ACT's zero-padded JPEG rows
    for i, frame in enumerate(frames):
        rows[i, : len(frame)] = np.frombuffer(frame, np.uint8)
    clean = np.zeros_like(rows)
    clean[:, : len(good)] = np.frombuffer(good, np.uint8)
    with h5py.File(tmp_path / "episode_0.hdf5", "w") as f:
        f.create_dataset("action", data=np.zeros((6, 2)))
        f.create_dataset("observations/qpos", data=np.zeros((6, 2)))
        f.create_dataset("observations/images/cam_a", data=rows)
        f.create_dataset("observations/images/cam_b", data=clean)
    out = tmp_path / "out"
    assert (
        run("convert", "hdf5", tmp_path / "episode_0.hdf5", out, "--layout", "aloha", "--quiet").exit_code
        == 0
    )
    assert run("verify", out).exit_code == 0  # hashes and indices are fine
    result = run("verify", out, "--deep")
    assert result.exit_code == 1
    assert (
        "shards/shard-00000.arrow row 3 column 'observation.images.cam_a' (episode 0, frame 3): "
        "JPEG cannot be decoded cleanly (Corrupt JPEG data" in result.output
    )
    assert "(and 1 more bad frames of this camera)" in result.output and "cam_b" not in result.output
    report = json.loads(run("verify", out, "--deep", "--json").output)
    assert not report["ok"] and len(report["problems"]) == 1


# -- item 3: camera size that changes between episodes ------------------------------------------------
@pytest.fixture
def mixed_sizes(tmp_path):
    from vla_data.samples import write_aloha_episode

    src = tmp_path / "src"
    src.mkdir()
    for i, height in enumerate([16, 16, 24, 16]):
        write_aloha_episode(src / f"episode_{i}.hdf5", seed=i, steps=6, height=height, width=16)
    return src


def test_camera_size_change_is_the_same_error_in_every_executor(mixed_sizes, tmp_path):
    expected = (
        "episode_2.hdf5, episode /, key 'observations/images/cam_high (observation.images.cam_high)': "
        "frames are 24x16 (height x width), the dataset's earlier episodes store 16x16; pass --image-size"
    )
    messages = []
    for executor in ("stream", "local"):
        out = tmp_path / executor
        result = run(*aloha_args(mixed_sizes, out, "--executor", executor, "--unit-episodes", "1"))
        assert result.exit_code == 1 and expected in last_line(result), result.output
        assert ".units" not in last_line(result) and not (out / "manifest.json").exists()
        messages.append(last_line(result).split(": ", 2)[-1])
    assert messages[0] == messages[1]


def test_camera_size_change_skipped_or_resized_alike(mixed_sizes, tmp_path):
    kept = {}
    for executor in ("stream", "local"):
        out = tmp_path / executor
        args = aloha_args(
            mixed_sizes, out, "--executor", executor, "--unit-episodes", "1", "--on-error", "skip"
        )
        assert run(*args).exit_code == 0
        manifest = strict_json(out / "manifest.json")
        kept[executor] = (
            sum(s["episodes"] for s in manifest["shards"]),
            [s["source_ref"] for s in manifest["skipped"]],
        )
        resized = tmp_path / f"{executor}-resized"
        args = aloha_args(
            mixed_sizes, resized, "--executor", executor, "--unit-episodes", "1", "--image-size", "16"
        )
        assert run(*args).exit_code == 0 and run("verify", resized, "--deep").exit_code == 0
        camera = strict_json(resized / "manifest.json")["features"]["observation.images.cam_high"]
        assert (camera["height"], camera["width"]) == (16, 16)
    assert kept["stream"] == kept["local"] and kept["stream"][0] == 3 and len(kept["stream"][1]) == 1
