"""The per-process page budget of memory-mapped shards: the resident pages of the dataset's files
stay under the budget plus one batch while a real loader reads a dataset larger than the budget,
in the main process and in a DataLoader worker, and the batches do not change."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_data.bench.synthetic import SyntheticRobotSource
from vla_data.convert import convert
from vla_data.loader import LoaderConfig, SourceConfig, make_loader
from vla_data.loader.config_check import ConfigError
from vla_data.loader.fast_cache import build_fast_cache
from vla_data.shards import ShardDataset, pages
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

BUDGET = 1 << 20
SAMPLES = 400


@dataclasses.dataclass(frozen=True)
class NoisyCameraSource(SyntheticRobotSource):
    """Synthetic steps whose frames are noise (JPEGs of several KB, so the shards are large)."""

    size: int = 64

    def read(self, ref):
        episode = super().read(ref)
        rng = np.random.default_rng(episode.index)
        frames = rng.integers(0, 256, (self.steps, self.size, self.size, 3), dtype=np.uint8)  # [T, H, W, 3]
        return dataclasses.replace(episode, images={"cam_high": frames})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pages")
    convert(NoisyCameraSource(episodes=40, steps=80, size=48), root / "robot")
    chunks = sample_chunks([root / "robot"], ChunkSpec(horizon=10, max_chunks=2000))
    FastTokenizer.fit(chunks.values, vocab_size=256).save_pretrained(root / "fast")
    build_fast_cache(make_loader(config(root)).sources[0], 0)
    return root


def config(root: Path, **overrides) -> LoaderConfig:
    base = dict(
        sources=(SourceConfig("robot", (str(root / "robot"),)),),
        fast_tokenizer=str(root / "fast"),
        batch_size=4,
        horizon=10,
        action_dim=8,
        image_size=(32, 32),
        samples_per_epoch=SAMPLES,
    )
    return LoaderConfig(**{**base, **overrides})


def mapped_bytes(pid: int | str, folder: Path) -> int:
    """Resident bytes (smaps `Rss`) of the mappings of files under `folder` in process `pid`."""
    total, inside = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(maxsplit=5)
            if (
                "-" in head[0] and len(head) >= 5
            ):  # a mapping's first line: range perms offset dev inode [path]
                inside = len(head) == 6 and head[5].strip().startswith(str(folder))
            elif inside and head[0] == "Rss:":
                total += int(head[1]) * 1024
    return total


def worker_pids() -> list[int]:
    pids = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            pids += [int(p) for p in f.read().split()]
    return pids


def run(cfg: LoaderConfig, folder: Path) -> tuple[list[dict], list[int]]:
    """Every batch of an epoch, and after each one the resident bytes of `folder`'s files in the
    process that read it (the worker when there is one)."""
    batches, resident = [], []
    for batch in make_loader(cfg):
        batches.append(batch)
        readers = [p for p in worker_pids() if mapped_bytes(p, folder)] if cfg.num_workers else ["self"]
        resident.append(max((mapped_bytes(p, folder) for p in readers), default=0))
    return batches, resident


def assert_same_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b) == SAMPLES // 4
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], dict):
                assert all(torch.equal(x[key][s], y[key][s]) for s in x[key]), key
            elif isinstance(x[key], torch.Tensor):
                assert torch.equal(x[key], y[key]), key
            else:
                assert x[key] == y[key], key


@pytest.fixture(scope="module")
def unbounded(data) -> tuple[list[dict], list[int]]:
    return run(config(data, page_budget=None), data / "robot")


def test_mapped_pages_stay_under_the_budget_and_batches_do_not_change(data, unbounded):
    files = sum(p.stat().st_size for p in (data / "robot").rglob("*.arrow"))
    assert files > 8 * BUDGET
    expected, grown = unbounded
    # one batch: the most the dataset's resident pages grew over one batch when nothing is released
    one_batch = max(b - a for a, b in zip([0, *grown], grown, strict=False))
    assert max(grown) > BUDGET + one_batch  # without a budget the data decides, not the budget
    before = pages.releases()
    batches, resident = run(config(data, page_budget=BUDGET), data / "robot")
    assert pages.releases() - before > 2
    assert max(resident) <= BUDGET + one_batch, (max(resident), BUDGET, one_batch)
    assert_same_batches(batches, expected)


def test_a_worker_keeps_its_own_pages_under_the_budget(data, unbounded):
    expected, grown = unbounded
    one_batch = max(b - a for a, b in zip([0, *grown], grown, strict=False))
    batches, resident = run(config(data, page_budget=BUDGET, num_workers=1), data / "robot")
    assert max(resident) > 0  # the worker was found and maps the shards
    assert max(resident) <= BUDGET + one_batch, (max(resident), BUDGET, one_batch)
    assert_same_batches(batches, expected)


def test_released_pages_read_the_same_bytes_through_views_made_before(data):
    shard = next((data / "robot").rglob("shard-*.arrow"))
    ds = ShardDataset(data / "robot", page_budget=0)  # 0: release at every check
    table = ds.episode_table(3, ["action", "observation.images.cam_high"])
    action = np.asarray(table.column("action").combine_chunks().flatten())
    frames = table.column("observation.images.cam_high").to_pylist()
    view = np.frombuffer(pages.map_file(shard), np.uint8)  # a view of the whole file
    head = view[: 1 << 16].copy()
    assert mapped_bytes("self", shard.parent) > 0
    assert ds.check_pages()
    assert mapped_bytes("self", shard.parent) == 0  # every page of the dataset's maps dropped
    assert np.array_equal(view[: 1 << 16], head)  # read again from the page cache
    assert head.tobytes() == shard.read_bytes()[: 1 << 16]
    again = ds.episode_table(3, ["action", "observation.images.cam_high"])
    assert np.array_equal(np.asarray(again.column("action").combine_chunks().flatten()), action)
    assert again.column("observation.images.cam_high").to_pylist() == frames
    assert not ShardDataset(data / "robot", page_budget=None).check_pages()  # None: no budget


def test_page_budget_is_checked(data, tmp_path):
    with pytest.raises(ValueError, match="page_budget must be >= 0"):
        ShardDataset(data / "robot", page_budget=-1)
    with pytest.raises(ConfigError, match="page_budget"):
        config(data, page_budget=-5)
    cfg = config(data, page_budget=None)
    cfg.save(tmp_path / "loader.json")
    assert LoaderConfig.load(tmp_path / "loader.json").page_budget is None
