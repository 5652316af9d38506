"""Shared fixtures: the conformance data in ../shared/data and small files written per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`: required in CI (fails clearly), skipped with a message elsewhere."""
    if not SHARED_DATA.is_dir():
        message = f"conformance data not found at {SHARED_DATA}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must have ../shared/data beside the clone)")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_hdf5(tmp_path_factory) -> Path:
    """A small ALOHA-layout sample (3 episodes x 40 steps, 2 cameras 48x64)."""
    from vla_data.samples import write_aloha_sample

    folder = tmp_path_factory.mktemp("aloha")
    write_aloha_sample(folder, episodes=3, steps=40, height=48, width=64)
    return folder
