import numpy as np
import pytest

from vla_data.images import decode_for_size, decode_image, encode_image, looks_complete, parse_size, resize


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:480, 0:640]
    smooth = np.stack([xs * 255 // 639, ys * 255 // 479, (xs + ys) % 256], -1)
    return (smooth + rng.integers(0, 20, smooth.shape)).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["pad", "crop", "stretch"])
def test_decode_for_size_matches_full_decode_then_resize(frame, mode):
    data = encode_image(frame, "jpeg", 90)
    fast = decode_for_size(data, 224, 224, mode)
    full = resize(decode_image(data), 224, 224, mode)
    assert fast.shape == full.shape == (224, 224, 3)
    assert np.abs(fast.astype(int) - full.astype(int)).mean() < 2.0  # DCT-domain downscale vs full decode


def test_resize_modes_geometry(frame):
    padded = resize(frame, 224, 224, "pad")  # 480x640 -> 168x224, 28 rows of black above and below
    assert padded[:28].max() == 0 and padded[-28:].max() == 0 and padded[28:196].max() > 0
    assert resize(frame, 100, 50, "stretch").shape == (100, 50, 3)  # crop: tests/test_trust.py


def test_structure_check_and_sizes(frame):
    jpeg, png = encode_image(frame[:16, :16], "jpeg"), encode_image(frame[:16, :16], "png")
    assert looks_complete(jpeg) and looks_complete(png)
    assert not looks_complete(jpeg[: len(jpeg) // 2]) and not looks_complete(b"GIF89a...")
    assert parse_size(224) == (224, 224) and parse_size("240x320") == (240, 320)
    with pytest.raises(ValueError):
        parse_size("1x2x3")
