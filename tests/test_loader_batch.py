"""Whole batches at once (`MixtureDataset.__getitems__`, what the DataLoader calls) equal the
per-sample path collated, field by field, on real converted robot + web datasets."""

import dataclasses

import numpy as np
import pytest
import torch

from vla_data.errors import VlaDataError
from vla_data.loader import SourceConfig, make_loader
from vla_data.loader.fast_cache import build_fast_cache
from vla_data.shards import ShardDataset

from .loader_data import loader_config, write_loader_data, write_word_level_tokenizer


@pytest.fixture(scope="module")
def data(demo_hdf5, tmp_path_factory):
    robots = {"robot": "Pick_up the\nCube", "cached": "stack the blocks"}
    return write_loader_data(tmp_path_factory.mktemp("loader_batch"), demo_hdf5, robots)


def make_config(data, **overrides):
    sources = (
        SourceConfig("robot", (str(data / "robot"),), 0.5),
        SourceConfig("web", (str(data / "web"),), 0.3),
        SourceConfig("robot", (str(data / "cached"), str(data / "robot")), 0.2, task="{task}, slowly"),
    )
    frames = (48, 64)  # as stored: frames decode straight into the batch
    settings = {"sources": sources, "batch_size": 16, "image_size": frames, "samples_per_epoch": 16 * 6}
    return loader_config(data, **{**settings, **overrides})


def assert_same_batch(got, expected):
    assert list(got) == list(expected)
    for key, value in expected.items():
        if isinstance(value, dict):
            assert list(got[key]) == list(value), key
            pairs = [(f"{key}/{slot}", got[key][slot], value[slot]) for slot in value]
        else:
            pairs = [(key, got[key], value)]
        for name, a, b in pairs:
            assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride(), name
            assert torch.equal(a, b), name


def check_batches(loader, batches=6):
    """Each of the first batches: `__getitems__` == collated samples == what the DataLoader yields."""
    dataset, collate = loader.dataloader.dataset, loader.dataloader.collate_fn
    keys = list(loader.dataloader.batch_sampler)[:batches]
    assert len(keys) == batches and len({s for batch in keys for s, _ in batch}) == len(loader.sources)
    for batch_keys, yielded in zip(keys, loader, strict=False):
        per_sample = collate([dataset[key] for key in batch_keys])
        assert_same_batch(dataset.__getitems__(batch_keys), per_sample)
        assert_same_batch(yielded, per_sample)


def test_batch_equals_collated_samples_on_a_robot_and_web_mixture(data):
    check_batches(make_loader(make_config(data)))


def test_batch_equals_collated_samples_with_resize_and_cached_fast_ids(data):
    config = make_config(data, image_size=(32, 32))
    robot = make_loader(config).sources[2]
    build_fast_cache(robot, 0)  # the "cached" dataset: ids from the cache, "robot": encoded per batch
    loader = make_loader(config)
    assert loader.sources[2].cache_paths[0] is not None and loader.sources[0].cache_paths[0] is None
    check_batches(loader)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(prompt_format="pi0fast", delta_action_dims=(0, 1, 7), normalization="zscore"),
        dict(prompt_format="pi05", image_decode="draft", bad_images="mask"),
        dict(state_in_prompt=False, max_tokens=60, truncate=True, lowercase=False),
    ],
    ids=["pi0fast-delta-zscore", "pi05-draft-mask", "no-state-truncated"],
)
def test_batch_equals_collated_samples_across_settings(data, overrides):
    check_batches(make_loader(make_config(data, **overrides)), batches=3)


def test_batch_equals_collated_samples_with_per_source_horizon_and_episode_limit(data):
    fps = ShardDataset(data / "robot").manifest.fps
    sources = (
        SourceConfig("robot", (str(data / "robot"),), horizon_seconds=4 / fps, max_episodes=2, task="wipe"),
        SourceConfig("web", (str(data / "web"),)),
        SourceConfig("robot", (str(data / "cached"),), cameras={"right_wrist_0_rgb": "cam_high"}),
    )
    loader = make_loader(make_config(data, sources=sources))
    assert loader.sources[0].config.horizon == 4
    check_batches(loader, batches=3)


def test_batch_equals_collated_samples_with_a_hugging_face_tokenizer(data, tmp_path):
    corpus = ["Task: pick up the cube slowly, State: 1 2 3 127 128;", "Action: |", "what shape is it?"]
    tokenizer = write_word_level_tokenizer(tmp_path / "tokenizer.json", corpus)
    check_batches(make_loader(make_config(data, text_tokenizer=tokenizer)), 3)


def test_a_corrupt_frame_is_named_or_masked_in_a_whole_batch(data, tmp_path):
    import shutil

    root = tmp_path / "robot"
    shutil.copytree(data / "robot", root)
    frame = ShardDataset(root).episode(1)["observation.images.cam_high"][3]
    shard = root / "shards" / "shard-00000.arrow"
    raw = bytearray(shard.read_bytes())
    at = raw.find(frame)
    raw[at + 2 : at + 60] = bytes(58)  # destroy the JPEG markers, keep the Arrow file intact
    shard.write_bytes(bytes(raw))
    config = make_config(data, sources=(SourceConfig("robot", (str(root),)),))
    keys = [(0, 42), (0, 43), (0, 44)]
    with pytest.raises(VlaDataError, match=r"row 43, column 'observation\.images\.cam_high': image cannot"):
        make_loader(config).dataloader.dataset.__getitems__(keys)
    loader = make_loader(dataclasses.replace(config, bad_images="mask"))
    dataset, collate = loader.dataloader.dataset, loader.dataloader.collate_fn
    batch = dataset.__getitems__(keys)
    assert_same_batch(batch, collate([dataset[key] for key in keys]))
    assert batch["images_dropped"].tolist() == [0, 1, 0]
    assert batch["image_masks"]["base_0_rgb"].tolist() == [True, False, True]
    assert not batch["images"]["base_0_rgb"][1].any()


def test_over_long_sequences_name_their_step_in_a_whole_batch(data):
    loader = make_loader(make_config(data, max_tokens=60))
    with pytest.raises(VlaDataError, match=r"robot episode 1 step 5: \d+ tokens exceed max_tokens=60"):
        loader.dataloader.dataset.__getitems__([(1, 3), (0, 45)])


def test_pin_memory_loader_gives_the_same_batches(data):
    """`pin_memory=True` goes through the DataLoader's pinning of the one-buffer batch (on a
    machine without an accelerator torch warns and leaves the batch in ordinary memory)."""
    config = make_config(data, samples_per_epoch=16 * 3)
    plain = list(make_loader(config))
    with pytest.warns(UserWarning, match="pin_memory"):
        pinned = list(make_loader(dataclasses.replace(config, pin_memory=True)))
    assert len(pinned) == len(plain) == 3
    for got, expected in zip(pinned, plain, strict=True):
        for key in ("tokens", "actions", "state", "token_loss_mask"):
            assert torch.equal(got[key], expected[key]), key
        for slot, images in expected["images"].items():
            assert torch.equal(got["images"][slot], images), slot


def test_all_rows_of_an_assembled_batch_are_written(data):
    """A batch buffer starts uninitialised: every image row must be decoded or blanked."""
    loader = make_loader(make_config(data))
    dataset = loader.dataloader.dataset
    keys = next(iter(loader.dataloader.batch_sampler))
    batches = [dataset.__getitems__(keys) for _ in range(3)]  # reused allocator memory must not leak in
    for batch in batches[1:]:
        assert_same_batch(batch, batches[0])
    web = ~batches[0]["has_actions"]
    assert web.any() and not np.asarray(batches[0]["images"]["right_wrist_0_rgb"][web]).any()


def test_buffer_pool_reuses_a_batch_buffer_only_once_nothing_references_it():
    import vla_data.loader.collate as collate_module
    from vla_data.loader.collate import BatchArrays, BatchShape, BufferPool, Collate

    pool = collate_module.MAIN_PROCESS_BUFFERS = BufferPool(size=2)
    try:
        collate = Collate(10, 0, shape=BatchShape(("a",), (4, 4), 3, 5))

        def batch():
            return BatchArrays(collate, collate.shape, 2).finish()

        def address(b):
            return b["tokens"].untyped_storage().data_ptr()

        first, second = batch(), batch()
        a, b = address(first), address(second)
        assert a != b  # both alive: two buffers
        del first
        third = batch()
        assert address(third) == a  # the dropped batch's buffer again
        view = third["images"]["a"].numpy()  # a caller keeps a numpy view of one tensor
        del third
        fourth = batch()
        assert address(fourth) not in (a, b) and len(pool._buffers) == 2  # kept by the view: not reused
        view[:] = 7
        del second
        assert address(batch()) == b  # the pool's free buffer; the held one stays the caller's
        assert (view == 7).all()
    finally:
        collate_module.MAIN_PROCESS_BUFFERS = BufferPool()


def test_sample_order_computed_in_blocks_is_the_seeded_permutation():
    from vla_data.loader.mixture import ORDER_BLOCK, MixturePlan
    from vla_data.permutation import permute

    size = 2 * ORDER_BLOCK + 123
    plan = MixturePlan(
        sizes=(size, 50), weights=(0.9, 0.1), batch_size=32, samples_per_epoch=3 * size, seed=4
    )
    m = np.r_[np.arange(ORDER_BLOCK - 40, ORDER_BLOCK + 40), [5, size - 1, size, 2 * size + 7]]
    expected = np.concatenate(
        [permute(np.atleast_1d(x % size), size, (4, 2, 1, x // size)) for x in m.tolist()]
    )
    np.testing.assert_array_equal(plan.source_order(2, 0, m), expected)
    assert sorted(plan.source_order(0, 0, np.arange(size)).tolist()) == list(range(size))


def test_worker_segments_are_reused_only_after_the_batch_is_gone(data):
    from vla_data.loader.shared_buffers import HEADER, MAGIC

    config = make_config(data, samples_per_epoch=16 * 12, num_workers=2)
    reference = list(make_loader(dataclasses.replace(config, num_workers=0)))
    held = list(make_loader(config))  # every batch kept: no segment may be written twice
    for got, expected in zip(held, reference, strict=True):
        assert_same_batch(got, expected)
    segments = []
    for got, expected in zip(make_loader(config), reference, strict=True):  # each batch dropped
        assert_same_batch(got, expected)
        storage = got["tokens"].untyped_storage()
        header = torch.empty(0, dtype=torch.uint8).set_(storage)[:HEADER].view(torch.int64)
        assert header[0] == MAGIC
        segments.append(tuple(header[1:3].tolist()))  # (worker, slot)
        del got, storage, header
    assert len(set(segments)) < len(segments)  # segments came back to their workers
    assert {w for w, _ in segments} == {0, 1}
