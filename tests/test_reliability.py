"""Crash-and-resume with SIGKILL, fuzzing of every parser, and loader robustness."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vla_data.errors import SourceError, VlaDataError
from vla_data.samples import write_aloha_sample
from vla_data.shards import ShardDataset, verify_dataset
from vla_data.shards.journal import load_journal
from vla_data.shards.manifest import MANIFEST_FILE, PROGRESS_FILE
from vla_data.shards.writer import sha256_file
from vla_data.sources.example import ExampleError, encode_example, parse_example
from vla_data.sources.tfds_features import parse_features
from vla_data.sources.tfrecord import iter_records, write_records
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.prompt import PromptBuilder, clean_task
from vla_data.tokenizers.text import ByteTokenizer

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- crash and resume --------------------------------------------------------------------------
def convert_command(src, out, *extra):
    return [
        sys.executable,
        "-m",
        "vla_data",
        "convert",
        "hdf5",
        str(src),
        str(out),
        "--layout",
        "aloha",
        "--shard-size",
        "0.05",
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def crash_source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash")
    write_aloha_sample(folder / "src", episodes=40, steps=40, height=48, width=64)
    subprocess.run(convert_command(folder / "src", folder / "reference"), check=True)
    return folder


def shards_of(out):
    return [(s["file"], s["sha256"]) for s in json.loads((out / MANIFEST_FILE).read_text())["shards"]]


@pytest.mark.parametrize("kill_after_shards", [1, 5, 20])
def test_sigkill_then_resume_gives_identical_shards(crash_source, tmp_path, kill_after_shards):
    out = tmp_path / "out"
    proc = subprocess.Popen(convert_command(crash_source / "src", out))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "shards").exists() and len(list((out / "shards").glob("*.arrow"))) >= kill_after_shards:
            break
        time.sleep(0.002)
    if proc.poll() is not None:
        pytest.fail("the conversion finished before it could be killed; make the sample larger")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / MANIFEST_FILE).exists()
    journal = load_journal(out / PROGRESS_FILE) if (out / PROGRESS_FILE).exists() else None
    for shard in journal.shards if journal else []:  # everything the journal references is complete
        assert sha256_file(out / shard["file"]) == shard["sha256"]
    resumed = subprocess.run(
        convert_command(crash_source / "src", out, "--resume"), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert shards_of(out) == shards_of(crash_source / "reference")
    assert (out / "episodes.arrow").read_bytes() == (
        crash_source / "reference" / "episodes.arrow"
    ).read_bytes()
    assert verify_dataset(out) == []
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted(
        p.name for p in (crash_source / "reference" / "shards").iterdir()
    )


# -- fuzzing -----------------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=300))
def test_tfrecord_reader_never_fails_otherwise_on_random_bytes(tmp_path, data):
    path = tmp_path / "random.tfrecord"
    path.write_bytes(data)
    try:
        list(iter_records(str(path)))
    except SourceError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=4), st.data())
def test_any_flipped_bit_is_caught(tmp_path, records, data):
    path = tmp_path / "framed.tfrecord"
    write_records(str(path), records)
    raw = bytearray(path.read_bytes())
    assert [r for _, r in iter_records(str(path))] == records
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(raw))
    with pytest.raises(SourceError, match="CRC mismatch|truncated"):
        list(iter_records(str(path)))


@FUZZ
@given(st.binary(max_size=200))
def test_example_parser_only_raises_example_error(data):
    try:
        parse_example(data)
    except ExampleError:
        pass


feature_values = st.one_of(
    st.lists(st.floats(allow_nan=False, width=32), max_size=8).map(lambda v: np.array(v, np.float32)),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=8).map(lambda v: np.array(v, np.int64)),
    st.lists(st.binary(max_size=16), max_size=4),
)


@FUZZ
@given(st.dictionaries(st.text(min_size=1, max_size=12), feature_values, max_size=5))
def test_example_round_trip(features):
    parsed = parse_example(encode_example(features))
    assert set(parsed) == set(features)
    for key, value in features.items():
        if isinstance(value, list):
            assert parsed[key] == value
        else:
            np.testing.assert_array_equal(parsed[key], value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "pythonClassName",
                    "featuresDict",
                    "features",
                    "tensor",
                    "sequence",
                    "feature",
                    "image",
                    "dtype",
                    "shape",
                    "dimensions",
                    "encoding",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@FUZZ
@given(json_values)
def test_features_json_parser_only_raises_source_error(spec):
    try:
        parse_features(spec if isinstance(spec, dict) else {"featuresDict": spec})
    except SourceError:
        pass


@pytest.fixture(scope="module")
def fitted():
    t = np.linspace(0, 1, 10)[None, :, None]
    chunks = 0.6 * np.sin(2 * np.pi * (np.linspace(0.2, 2, 300)[:, None, None] * t + np.arange(4) / 4))
    return FastTokenizer.fit(chunks, vocab_size=400), FastTokenizer.fit(chunks, vocab_size=400, mode="compat")


@FUZZ
@given(st.lists(st.lists(st.integers(-5, 5000), max_size=80), min_size=1, max_size=6))
def test_fast_decode_flag_mode_never_raises(fitted, sequences):
    for fast in fitted:
        actions, valid = fast.decode(sequences, horizon=10, action_dim=4, on_error="flag")
        assert actions.shape == (len(sequences), 10, 4) and valid.shape == (len(sequences),)
        assert np.all(actions[~valid] == 0)  # values of valid decodes: tests/test_trust.py


@FUZZ
@given(st.text(max_size=60), st.lists(st.floats(-3, 3), min_size=1, max_size=8))
def test_prompt_building_on_any_unicode_task(task, state):
    builder = PromptBuilder(ByteTokenizer(), fast_vocab_size=64, mapping="append")
    tokens = builder.robot(task, np.array(state), np.array([0, 63]))
    text = ByteTokenizer().decode(tokens.tokens.tolist())
    assert text.startswith(f"Task: {clean_task(task)}, State: ") and "\n" not in clean_task(task)
    assert tokens.loss.sum() == 4  # two FAST ids, "|", EOS


# -- loader robustness -------------------------------------------------------------------------
@pytest.fixture
def small_loader_data(demo_hdf5, tmp_path):
    from vla_data.convert import convert
    from vla_data.sources.hdf5 import HDF5Source
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha"), tmp_path / "robot")
    FastTokenizer.fit(
        sample_chunks([tmp_path / "robot"], ChunkSpec(horizon=8)).values, vocab_size=300
    ).save_pretrained(tmp_path / "fast")
    return tmp_path


def loader_config(root, **overrides):
    from vla_data.loader import LoaderConfig, SourceConfig

    base = dict(
        sources=(SourceConfig("robot", (str(root / "robot"),)),),
        fast_tokenizer=str(root / "fast"),
        fast_mapping="append",
        batch_size=4,
        horizon=8,
        action_dim=16,
        image_size=(32, 32),
        max_tokens=256,
    )
    return LoaderConfig(**{**base, **overrides})


def test_corrupt_image_in_a_shard_is_named_or_masked(small_loader_data):
    from vla_data.loader import make_loader

    root = small_loader_data
    ds = ShardDataset(root / "robot")
    frame = ds.episode(1)["observation.images.cam_high"][3]
    shard = root / "robot" / "shards" / "shard-00000.arrow"
    raw = bytearray(shard.read_bytes())
    at = raw.find(frame)
    raw[at + 2 : at + 60] = bytes(58)  # destroy the JPEG markers, keep the Arrow file intact
    shard.write_bytes(bytes(raw))
    loader = make_loader(loader_config(root))
    with pytest.raises(
        VlaDataError,
        match=r"shard-00000\.arrow: row 43, column 'observation\.images\.cam_high': image cannot be decoded",
    ):
        loader.sources[0][40 + 3]
    masked = make_loader(loader_config(root, bad_images="mask"))
    sample = masked.sources[0][43]
    assert sample["image_masks"]["base_0_rgb"] is False and sample["images_dropped"] == 1
    assert "images_dropped" in next(iter(masked))


class KillWorker:
    """Wraps a source; kills the worker process that fetches `index`."""

    def __init__(self, source, index):
        self.source, self.index = source, index

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        if index == self.index:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.source[index]


def test_worker_crash_is_an_error_not_a_hang(small_loader_data):
    from vla_data.loader import make_loader

    loader = make_loader(loader_config(small_loader_data, num_workers=2, mode="stratified"))
    first_key = loader.plan.batch(0, 1)[0][1]
    loader.dataloader.dataset.sources[0] = KillWorker(loader.sources[0], first_key)
    signal.alarm(120)  # a hang fails the test instead of the suite
    try:
        with pytest.raises(RuntimeError, match="DataLoader worker .* exited unexpectedly|killed by signal"):
            for _ in loader:
                pass
    finally:
        signal.alarm(0)
