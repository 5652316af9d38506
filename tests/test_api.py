"""The Python API a user reaches first: `vla_data.convert(...)`, `ShardDataset[i]`, typing marker."""

import inspect
from pathlib import Path

import numpy as np
import pytest

import vla_data
from vla_data import ConvertOptions, HDF5Source, ShardDataset
from vla_data.images import decode_image

ROOT = Path(vla_data.__file__).parent


def test_convert_is_a_function_and_indexing_decodes_one_step(demo_hdf5, tmp_path):
    from vla_data import convert

    assert inspect.isfunction(convert) and convert is vla_data.convert
    manifest = vla_data.convert(
        HDF5Source.from_paths(demo_hdf5, layout="aloha", task="t", fps=50), tmp_path / "o", ConvertOptions()
    )
    ds = ShardDataset(tmp_path / "o")
    assert len(ds) == manifest.num_frames == 120
    step = ds[41]  # episode 1, frame 1
    raw = ds.step(41)
    assert isinstance(step["action"], np.ndarray) and step["action"].shape == (14,)
    np.testing.assert_array_equal(step["action"], ds.episode(1, ["action"])["action"][1])
    assert isinstance(step["frame_index"], np.integer) and int(step["frame_index"]) == 1
    assert isinstance(step["episode_index"], np.integer) and int(step["episode_index"]) == 1
    cameras = [n for n, f in ds.features.items() if f.kind == "image"]
    assert len(cameras) == 2
    for name in cameras:
        assert step[name].dtype == np.uint8 and step[name].shape == (48, 64, 3)
        np.testing.assert_array_equal(step[name], decode_image(raw[name]))
    np.testing.assert_array_equal(ds[-1]["action"], ds[len(ds) - 1]["action"])
    with pytest.raises(IndexError, match="step 120 out of range"):
        ds[120]
    with pytest.raises(TypeError, match="indices are integers"):
        ds["action"]


def test_package_ships_a_typing_marker():
    assert (ROOT / "py.typed").is_file()
    pyproject = (ROOT.parent / "pyproject.toml").read_text()
    assert '[tool.setuptools.package-data]\nvla_data = ["py.typed"]' in pyproject
