"""The loader's fast paths give the same values as the plain ones: simplejpeg decode vs PIL,
one-buffer batches with channels-last images, bounded episode and FAST id caches."""

import io

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from vla_data.images import decode_image
from vla_data.loader.collate import Collate
from vla_data.loader.episode_cache import EpisodeCache, IdLists


def photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w]
    smooth = np.stack([xs * 255 // (w - 1), ys * 255 // (h - 1), (xs * ys) % 256], -1)
    return (smooth + rng.normal(0, 8, smooth.shape)).clip(0, 255).astype(np.uint8)


def jpeg(frame, **options):
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def pil_decode(data):
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


CASES = {
    "4:2:0 q95": lambda f: jpeg(f, quality=95),
    "4:4:4 q90": lambda f: jpeg(f, quality=90, subsampling=0),
    "4:2:2 q75": lambda f: jpeg(f, quality=75, subsampling=1),
    "progressive": lambda f: jpeg(f, quality=85, progressive=True),
    "grayscale": lambda f: jpeg(f[..., 0]),
    "odd size": lambda f: jpeg(f[:37, :53]),
    "CMYK (PIL fallback)": lambda f: (
        lambda b: (Image.fromarray(f).convert("CMYK").save(b, "JPEG"), b.getvalue())[1]
    )(io.BytesIO()),
    "PNG": lambda f: (lambda b: (Image.fromarray(f).save(b, "PNG"), b.getvalue())[1])(io.BytesIO()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_decode_is_pixel_identical_to_pil(case):
    pytest.importorskip("simplejpeg")  # a declared dependency; the PIL path needs no proof
    data = CASES[case](photo(120, 160))
    np.testing.assert_array_equal(decode_image(data), pil_decode(data))


def test_corrupt_jpeg_still_fails():
    data = bytearray(jpeg(photo(64, 64)))
    data[len(data) // 2 : len(data) // 2 + 200] = bytes(200)  # zeroed entropy-coded data, markers intact
    with pytest.raises(Exception):  # noqa: B017 - PIL raises OSError or SyntaxError depending on the damage
        pil_decode(bytes(data[: len(data) // 2]))  # the reference refuses a truncated stream
    with pytest.raises(Exception):  # noqa: B017
        decode_image(bytes(data[: len(data) // 2]))


def test_batch_is_one_buffer_with_channels_last_images_and_the_sample_values():
    from vla_data.tokenizers.prompt import SampleTokens

    frames = [photo(24, 32, seed=s) for s in range(4)]
    samples = []
    for b, frame in enumerate(frames):
        n = 5 + b
        samples.append(
            {
                "images": {"a": frame.transpose(2, 0, 1), "b": np.zeros((3, 24, 32), np.uint8)},
                "image_masks": {"a": True, "b": False},
                "tokens": SampleTokens(np.arange(n), np.arange(n) > 2, np.arange(n) > 3, np.arange(n) == 4),
                "state": np.full(6, b, np.float32),
                "actions": np.full((3, 6), b, np.float32),
                "action_is_pad": np.array([False, False, b > 1]),
                "action_dim_mask": np.ones(6, bool),
                "has_actions": True,
                "source": b % 2,
                "images_dropped": 0,
                "where": f"sample {b}",
            }
        )
    batch = Collate(max_tokens=12, pad_id=99, truncate=True, count_dropped_images=True)(samples)
    images = batch["images"]["a"]
    assert images.shape == (4, 3, 24, 32) and images.dtype == torch.uint8
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(
        images.contiguous(), torch.from_numpy(np.stack([f.transpose(2, 0, 1) for f in frames]))
    )
    assert not batch["images"]["b"].any() and batch["image_masks"]["b"].tolist() == [False] * 4
    assert batch["tokens"][3].tolist() == list(range(8)) + [99] * 4
    assert batch["token_mask"].sum(1).tolist() == [5, 6, 7, 8] and batch["fast_token_mask"].sum().item() == 4
    assert batch["state"][:, 0].tolist() == [0, 1, 2, 3] and batch["action_is_pad"][:, 2].tolist() == [
        0,
        0,
        1,
        1,
    ]
    assert batch["source"].dtype == torch.int64 and batch["source"].tolist() == [0, 1, 0, 1]
    assert not batch["truncated"].any() and batch["has_actions"].all()
    tensors = [batch[k] for k in batch if isinstance(batch[k], torch.Tensor)] + list(batch["images"].values())
    assert len({t.untyped_storage().data_ptr() for t in tensors}) == 1  # one buffer: one fd per batch


def test_episode_cache_is_bounded_by_entries_and_bytes():
    loads = []

    def loader(n):
        def load():
            loads.append(n)
            return np.zeros((n, 10), np.float32), None

        return load

    cache = EpisodeCache(max_episodes=3, max_bytes=10_000)
    for episode in range(6):
        cache.get((0, episode), loader(10))  # 400 bytes each
    assert len(cache) == 3 and cache.nbytes == 1200
    cache.get((0, 5), loader(10))
    assert loads == [10] * 6  # a hit loads nothing
    cache.get((0, 9), loader(240))  # 9600 bytes: the byte bound evicts the two oldest entries
    assert cache.nbytes <= 10_000 and len(cache) == 2
    cache.get((0, 10), loader(400))  # larger than the bound alone: kept, everything else evicted
    assert len(cache) == 1


def test_id_lists_match_arrow_rows_across_record_batches():
    rows = [[1, 2, 3], [], [4], [5, 6], [7, 8, 9, 10]]
    column = pa.chunked_array(
        [pa.array(rows[:2], pa.list_(pa.int32())), pa.array(rows[2:], pa.list_(pa.int32()))]
    )
    ids = IdLists(column)
    assert [ids[r].tolist() for r in range(len(rows))] == rows
    sliced = pa.chunked_array([pa.array(rows, pa.list_(pa.int32())).slice(2)])  # a non-zero offset
    assert [IdLists(sliced)[r].tolist() for r in range(3)] == rows[2:]


def test_binary_views_cut_the_same_bytes_as_arrow():
    from vla_data.loader.episode_cache import binary_views

    values = [b"\xff\xd8one", b"", None, b"three", b"\x00four"]
    for kind in (pa.binary(), pa.large_binary()):
        array = pa.array(values, kind)
        for column in (array, array.slice(1), pa.chunked_array([array.slice(2)])):
            offsets, data = binary_views(column)
            expected = column.to_pylist()
            assert [data[offsets[i] : offsets[i + 1]].tobytes() for i in range(len(expected))] == [
                v or b"" for v in expected
            ]
