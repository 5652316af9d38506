"""The loader's image stage (`loader/batch_images.py`, `images.decode_into`) on real converted files
holding the frames its fast path must leave to PIL (CMYK, RGB-coded and gray JPEGs), progressive
ones, a camera stored at another size than the model's, a slot with no camera and corrupt frames:
whole batches equal the per-sample path with any number of decode threads, in the main process and
in real DataLoader workers, and blank slots are zero in a reused buffer the caller wrote into."""

import dataclasses
import hashlib
import io
import multiprocessing
import os
import shutil
import signal
from contextlib import contextmanager

import h5py
import numpy as np
import pytest
import simplejpeg
import torch
from PIL import Image

from vla_data.convert import convert
from vla_data.errors import VlaDataError
from vla_data.images import decode_for_size, decode_into, resize
from vla_data.loader import LoaderConfig, SourceConfig, batch_images, make_loader
from vla_data.loader.config_check import ConfigError
from vla_data.samples import write_aloha_sample
from vla_data.shards import ShardDataset
from vla_data.sources.hdf5 import HDF5Source
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

SIZE = (48, 64)  # the model's image size; cam_high is stored at it, cam_left_wrist at OTHER
OTHER = (40, 56)
KINDS = ("baseline", "cmyk", "progressive", "rgb", "gray")
HIGH = "observation.images.cam_high"


def jpeg(frame: np.ndarray, kind: str) -> bytes:
    image, buffer = Image.fromarray(frame), io.BytesIO()
    if kind == "cmyk":
        image.convert("CMYK").save(buffer, "JPEG", quality=90)
    elif kind == "rgb":  # Adobe marker, no colour transform: simplejpeg reports "RGB"
        image.save(buffer, "JPEG", quality=90, keep_rgb=True)
    elif kind == "gray":
        image.convert("L").save(buffer, "JPEG", quality=90)
    else:
        image.save(buffer, "JPEG", quality=90, progressive=kind == "progressive")
    return buffer.getvalue()


def pil_reference(data: bytes, size: tuple[int, int]) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return resize(np.asarray(image.convert("RGB")), *size)


def store_as_jpeg_rows(folder):
    """Rewrite each episode's cameras as ACT's compressed layout (one zero-padded JPEG per row),
    which `convert` copies byte for byte: cam_high cycles through KINDS at the model size,
    cam_left_wrist alternates baseline / CMYK at OTHER."""
    for path in sorted(folder.glob("*.hdf5")):
        with h5py.File(path, "r+") as f:
            images = f["observations/images"]
            high, wrist = images["cam_high"][()], images["cam_left_wrist"][()]
            encoded = {
                "cam_high": [jpeg(x, KINDS[t % len(KINDS)]) for t, x in enumerate(high)],
                "cam_left_wrist": [
                    jpeg(resize(x, *OTHER, "stretch"), ("baseline", "cmyk")[t % 2])
                    for t, x in enumerate(wrist)
                ],
            }
            for camera, frames in encoded.items():
                rows = np.zeros((len(frames), max(map(len, frames))), np.uint8)
                for t, data in enumerate(frames):
                    rows[t, : len(data)] = np.frombuffer(data, np.uint8)
                del images[camera]
                images.create_dataset(camera, data=rows)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader_images")
    for name in ("raw_kinds", "raw_plain"):
        write_aloha_sample(root / name, episodes=2, steps=20, height=SIZE[0], width=SIZE[1])
    store_as_jpeg_rows(root / "raw_kinds")
    convert(HDF5Source.from_paths(root / "raw_kinds", layout="aloha", task="pick"), root / "kinds")
    convert(HDF5Source.from_paths(root / "raw_plain", layout="aloha", task="place"), root / "plain")
    chunks = sample_chunks([root / "kinds"], ChunkSpec(horizon=8))
    FastTokenizer.fit(chunks.values, vocab_size=300).save_pretrained(root / "fast")
    return root


def make_config(data, kinds="kinds", **overrides):
    base = dict(
        sources=(  # the camera-less slot differs between the sources: mixed batches blank scattered rows
            SourceConfig(
                "robot",
                (str(data / kinds),),
                cameras={
                    "base_0_rgb": "cam_high",
                    "left_wrist_0_rgb": "cam_left_wrist",
                    "right_wrist_0_rgb": None,
                },
            ),
            SourceConfig(
                "robot",
                (str(data / "plain"),),
                cameras={
                    "base_0_rgb": None,
                    "left_wrist_0_rgb": "cam_left_wrist",
                    "right_wrist_0_rgb": "cam_high",
                },
            ),
        ),
        fast_tokenizer=str(data / "fast"),
        fast_mapping="append",
        batch_size=12,
        max_tokens=200,
        horizon=8,
        action_dim=16,
        image_size=SIZE,
        samples_per_epoch=12 * 4,
    )
    return LoaderConfig(**{**base, **overrides})


def assert_same_batch(got, expected):
    assert list(got) == list(expected)
    for key, value in expected.items():
        pairs = (
            [(f"{key}/{s}", got[key][s], value[s]) for s in value]
            if isinstance(value, dict)
            else [(key, got[key], value)]
        )
        for name, a, b in pairs:
            assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride(), name
            assert torch.equal(a, b), name


def per_sample(loader, keys):
    dataset = loader.dataloader.dataset
    return loader.dataloader.collate_fn([dataset[key] for key in keys])


def test_the_frames_cover_what_the_fast_path_must_leave_to_pil(data):
    """Preconditions that make the batch tests able to fail: the stored frames are what they claim
    and simplejpeg's own CMYK conversion differs from PIL's (the per-sample path's)."""
    ds = ShardDataset(data / "kinds")
    high, wrist = ds.episode(0)[HIGH], ds.episode(0)["observation.images.cam_left_wrist"]
    spaces = [simplejpeg.decode_jpeg_header(high[t])[2] for t in range(len(KINDS))]
    assert spaces == ["YCbCr", "CMYK", "YCbCr", "RGB", "Gray"]
    assert simplejpeg.decode_jpeg_header(wrist[1])[:3] == (*OTHER, "CMYK")
    cmyk = high[1]
    assert not np.array_equal(simplejpeg.decode_jpeg(cmyk, "RGB"), pil_reference(cmyk, SIZE))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stored", [SIZE, OTHER], ids=["model-size", "other-size"])
def test_decode_into_is_pils_decode_and_resize_for_every_kind(kind, stored):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (*stored, 3), dtype=np.uint8)
    data = jpeg(frame, kind)
    expected = pil_reference(data, SIZE)
    for given in (data, np.frombuffer(data, np.uint8)):  # bytes, or a view of a shard
        out = np.full((*SIZE, 3), 7, np.uint8)  # garbage left from an earlier batch
        decode_into(given, out)
        assert np.array_equal(out, expected) and np.array_equal(out, decode_for_size(data, *SIZE))


@pytest.mark.parametrize(
    "bad",
    [b"\xff\xd8\xff\xe0" + bytes(60), b"GIF89a" + bytes(60), "truncated", "markers"],
    ids=["zeros", "not-an-image", "truncated", "markers"],
)
def test_decode_into_raises_where_decode_for_size_does(bad):
    good = jpeg(np.random.default_rng(2).integers(0, 256, (*SIZE, 3), dtype=np.uint8), "baseline")
    if bad == "truncated":
        bad = good[: len(good) // 2]
    elif bad == "markers":
        bad = good[:2] + bytes(58) + good[60:]
    with pytest.raises(Exception) as per_sample_error:
        decode_for_size(bad, *SIZE)
    with pytest.raises(type(per_sample_error.value)):
        decode_into(np.frombuffer(bad, np.uint8), np.zeros((*SIZE, 3), np.uint8))


@pytest.mark.parametrize("threads", [1, 3, "auto"])
def test_batches_equal_the_per_sample_path_with_any_number_of_decode_threads(data, threads):
    loader = make_loader(make_config(data, decode_threads=threads))
    dataset = loader.dataloader.dataset
    keys = list(loader.dataloader.batch_sampler)
    scattered = [k for k in keys if np.any(np.diff([i for i, (s, _) in enumerate(k) if s == 0]) > 1)]
    assert scattered, "no batch mixes the sources' rows: the blank slots would all be slices"
    for batch_keys in keys:
        assert_same_batch(dataset.__getitems__(batch_keys), per_sample(loader, batch_keys))
    if threads != 1:
        used = batch_images.decode_threads(threads)
        assert used > 1 or os.cpu_count() == 1
        assert used == 1 or (os.getpid(), used) in batch_images._pools  # the pool did the work


def test_threads_decode_every_frame_once_and_report_failures_in_order(data):
    frames = list(ShardDataset(data / "kinds").episode(0)[HIGH]) * 3
    bad = [2, 5, 11, 12, 40, 59]
    for j in bad:
        frames[j] = b"\xff\xd8\xff" + bytes(40)
    expected = [np.zeros((*SIZE, 3), np.uint8) for _ in frames]
    assert [j for j, _ in batch_images._decode(frames, expected, False, 1)] == bad
    for _ in range(5):
        outs = [np.full((*SIZE, 3), 9, np.uint8) for _ in frames]
        failures = batch_images._decode(frames, outs, False, 3, lambda outs=outs: outs[bad[0]].fill(0))
        assert [j for j, _ in failures] == bad and all(isinstance(e, Exception) for _, e in failures)
        for j, (got, want) in enumerate(zip(outs, expected, strict=True)):
            assert j in bad[1:] or np.array_equal(got, want), j


@contextmanager
def deadline(seconds: int):
    """A hang (a worker waiting on a pool with no threads) fails the test instead of the suite."""

    def expire(signum, frame):
        raise TimeoutError(f"no result within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_worker_batches_with_decode_threads_equal_one_thread_in_the_main_process(data):
    """Real DataLoader workers (forked after this process made a decode pool) with 2 decode threads
    each give the batches of one thread in the main process, byte for byte."""
    list(make_loader(make_config(data, decode_threads=2, samples_per_epoch=12)))
    assert (os.getpid(), 2) in batch_images._pools  # a pool the workers inherit and must not use
    expected = list(make_loader(make_config(data, decode_threads=1)))
    with deadline(60):
        got = list(make_loader(make_config(data, decode_threads=2, num_workers=2)))
    assert len(got) == len(expected) == 4
    for a, b in zip(got, expected, strict=True):
        assert_same_batch(a, b)


def _decode_in_child(frames, queue):
    outs = [np.zeros((*SIZE, 3), np.uint8) for _ in frames]
    failures = batch_images._decode(frames, outs, False, 2)
    pids = {pid for pid, _ in batch_images._pools}
    queue.put((hashlib.sha256(b"".join(o.tobytes() for o in outs)).hexdigest(), len(failures), pids))


def test_a_forked_process_makes_its_own_decode_pool(data):
    """The parent's pool has no threads in a fork: using it would wait forever."""
    frames = ShardDataset(data / "kinds").episode(1)[HIGH]
    outs = [np.zeros((*SIZE, 3), np.uint8) for _ in frames]
    assert batch_images._decode(frames, outs, False, 2) == []
    assert (os.getpid(), 2) in batch_images._pools
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_decode_in_child, args=(frames, queue))
    child.start()
    try:
        digest, failures, pids = queue.get(timeout=20)
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    assert digest == hashlib.sha256(b"".join(o.tobytes() for o in outs)).hexdigest()
    assert failures == 0 and pids == {child.pid}


@pytest.fixture
def corrupt(data, tmp_path):
    """A copy of the kinds dataset with episode 1's cam_high frames at steps 3 and 7 corrupt."""
    root = tmp_path / "kinds"
    shutil.copytree(data / "kinds", root)
    frames = ShardDataset(root).episode(1)[HIGH]
    shard = root / "shards" / "shard-00000.arrow"
    raw = bytearray(shard.read_bytes())
    for step in (3, 7):
        at = raw.find(frames[step])
        raw[at + 2 : at + 60] = bytes(58)  # destroy the JPEG markers, keep the Arrow file intact
    shard.write_bytes(bytes(raw))
    os.symlink(data / "fast", tmp_path / "fast")
    os.symlink(data / "plain", tmp_path / "plain")
    return tmp_path


@pytest.mark.parametrize("threads", [1, 3])
def test_a_corrupt_frame_is_named_or_masked_from_any_thread(corrupt, threads):
    """The error is the first corrupt frame in row order whichever thread met it; masked, the
    batch is the per-sample path's. Episode 1 starts at row 20 of the shard."""
    config = make_config(corrupt, decode_threads=threads)
    keys = [(0, 0), (0, 20 + 7), (0, 1), (0, 20 + 3), (1, 5), (0, 2)]
    with pytest.raises(
        VlaDataError, match=r"shard-00000\.arrow: row 27, column 'observation\.images\.cam_high'"
    ):
        make_loader(config).dataloader.dataset.__getitems__(keys)
    loader = make_loader(dataclasses.replace(config, bad_images="mask"))
    batch = loader.dataloader.dataset.__getitems__(keys)
    assert_same_batch(batch, per_sample(loader, keys))
    assert batch["images_dropped"].tolist() == [0, 1, 0, 1, 0, 0]
    assert batch["image_masks"]["base_0_rgb"].tolist() == [True, False, True, False, False, True]
    assert not batch["images"]["base_0_rgb"][[1, 3]].any()


def clone(batch):
    return {
        k: {s: t.clone() for s, t in v.items()} if isinstance(v, dict) else v.clone()
        for k, v in batch.items()
    }


@pytest.mark.parametrize("threads", [1, 2])
def test_blank_slots_are_zero_in_a_reused_buffer_the_caller_wrote_into(data, threads):
    """The main process reuses a batch's buffer once the caller let go; whatever the caller wrote
    into it meanwhile (through torch or numpy), the next batch is the per-sample path's."""
    loader = make_loader(make_config(data, decode_threads=threads))
    dataset = loader.dataloader.dataset
    keys = list(loader.dataloader.batch_sampler)
    one_source = [(0, i) for i in range(12)]  # blank rows as one slice
    order = [keys[0], one_source, keys[1], keys[2], one_source]
    expected = [clone(per_sample(loader, k)) for k in order]  # copies: no pool buffer stays taken
    previous = None
    for step, batch_keys in enumerate(order):
        batch = dataset.__getitems__(batch_keys)
        pointer = batch["tokens"].untyped_storage().data_ptr()
        assert previous in (None, pointer), "the buffer was not reused: nothing tested"
        assert_same_batch(batch, expected[step])
        for s, images in enumerate(batch["images"].values()):  # in-place augmentation
            if step % 2:  # one byte a row (a check of a few words per row would miss it)
                images.numpy()[:, 0, 5, 7] = 1
            else:  # some rows through torch, one through numpy
                images[s::2].add_(1 + step)
                images.numpy()[1] = 200
        previous = pointer
        del batch, images


def test_decode_threads_setting_round_trips_and_is_checked(data, tmp_path):
    config = make_config(data, decode_threads=3)
    config.save(tmp_path / "loader.json")
    assert LoaderConfig.load(tmp_path / "loader.json").decode_threads == 3
    assert make_config(data).decode_threads == "auto"
    for bad, message in (
        (0, "must be >= 1"),
        ("two", "expected an integer or one of 'auto'"),
        (True, "expected"),
    ):
        with pytest.raises(ConfigError, match=f"decode_threads: {message}"):
            make_config(data, decode_threads=bad)
    assert batch_images.decode_threads(3) == 3
    assert batch_images.decode_threads("auto") == min(batch_images.AUTO_THREADS, len(os.sched_getaffinity(0)))
