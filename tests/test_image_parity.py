"""Image parity with openpi: resize_with_pad sizes and offsets, full decode by default, draft as an option.

The reference is openpi's `packages/openpi-client/src/openpi_client/image_tools.py`
(`_resize_with_pad_pil`): `ratio = max(cur_width / width, cur_height / height)`, content
`int(cur_height / ratio) x int(cur_width / ratio)` resized with PIL bilinear, pasted on black at
`(int((width - w') / 2), int((height - h') / 2))`. `openpi_resize_with_pad` below restates it.
"""

import numpy as np
import pytest
from PIL import Image

from vla_data.convert import convert
from vla_data.images import content_size, decode_for_size, decode_image, encode_image, resize
from vla_data.loader import LoaderConfig, SourceConfig, make_loader
from vla_data.shards import ShardDataset
from vla_data.sources.hdf5 import HDF5Source
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks


def openpi_resize_with_pad(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    image = Image.fromarray(frame)
    cur_width, cur_height = image.size
    if (cur_width, cur_height) == (width, height):
        return frame
    ratio = max(cur_width / width, cur_height / height)
    resized = image.resize((int(cur_width / ratio), int(cur_height / ratio)), resample=Image.BILINEAR)
    out = Image.new(resized.mode, (width, height), 0)
    out.paste(resized, (max(0, int((width - resized.width) / 2)), max(0, int((height - resized.height) / 2))))
    return np.asarray(out)


def noisy_frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w]
    smooth = np.stack([xs * 255 // max(w - 1, 1), ys * 255 // max(h - 1, 1), (xs + ys) % 256], -1)
    return (smooth + rng.integers(0, 30, smooth.shape)).clip(0, 255).astype(np.uint8)


def test_content_size_truncates_like_openpi():
    # 240x424 -> 224x224: 240 / (424 / 224) = 126.79 rows; openpi keeps 126 (int), rounding gives 127
    assert content_size(240, 424, 224, 224) == (126, 224)
    assert content_size(480, 640, 224, 224) == (168, 224)
    assert content_size(100, 100, 224, 224) == (224, 224)


@pytest.mark.parametrize("shape", [(240, 424), (480, 640), (720, 1280), (250, 333), (300, 200), (100, 150)])
def test_resize_pad_is_pixel_identical_to_openpi(shape):
    frame = noisy_frame(*shape)
    ours = resize(frame, 224, 224, "pad")
    np.testing.assert_array_equal(ours, openpi_resize_with_pad(frame, 224, 224))
    rows = np.flatnonzero(ours.any(axis=(1, 2)))
    assert len(rows) == content_size(*shape, 224, 224)[0]


def test_full_decode_is_the_default_and_draft_is_close_but_not_identical():
    data = encode_image(noisy_frame(480, 640), "jpeg", 90)
    full = decode_for_size(data, 224, 224)
    np.testing.assert_array_equal(full, openpi_resize_with_pad(decode_image(data), 224, 224))
    draft = decode_for_size(data, 224, 224, draft=True)
    assert draft.shape == full.shape and not np.array_equal(draft, full)
    assert np.abs(draft.astype(int) - full.astype(int)).mean() < 2.0
    # Frames already at the model size are never resized: draft changes nothing there.
    stored = encode_image(noisy_frame(224, 224), "jpeg", 90)
    np.testing.assert_array_equal(decode_for_size(stored, 224, 224, draft=True), decode_image(stored))


def test_loader_image_decode_option(tmp_path):
    from vla_data.samples import write_aloha_sample

    write_aloha_sample(tmp_path / "raw", episodes=1, steps=12, height=96, width=128)
    convert(HDF5Source.from_paths(tmp_path / "raw", layout="aloha", task="t"), tmp_path / "robot")
    FastTokenizer.fit(
        sample_chunks([tmp_path / "robot"], ChunkSpec(horizon=4)).values, vocab_size=300
    ).save_pretrained(tmp_path / "fast")
    frame = ShardDataset(tmp_path / "robot").episode(0)["observation.images.cam_high"][3]
    for decode in ("full", "draft"):
        config = LoaderConfig(
            sources=(SourceConfig("robot", (str(tmp_path / "robot"),)),),
            fast_tokenizer=str(tmp_path / "fast"),
            fast_mapping="append",
            horizon=4,
            max_tokens=400,
            batch_size=4,
            image_size=(40, 40),
            image_decode=decode,
        )
        sample = make_loader(config).sources[0][3]
        expected = decode_for_size(frame, 40, 40, draft=decode == "draft").transpose(2, 0, 1)
        np.testing.assert_array_equal(sample["images"]["base_0_rgb"], expected)
    full = decode_for_size(frame, 40, 40)
    assert not np.array_equal(full, decode_for_size(frame, 40, 40, draft=True))
    with pytest.raises(Exception, match="image_decode: must be one of 'full', 'draft', got 'fast'"):
        LoaderConfig(**{**vars(config), "image_decode": "fast"})
