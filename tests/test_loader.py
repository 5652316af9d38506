"""The co-training loader: prompts, masks, pads, mixture, workers, resume, ranks, cache."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vla_data.cli import main
from vla_data.convert import convert
from vla_data.errors import VlaDataError
from vla_data.loader import LoaderConfig, SourceConfig, ki_attention_mask, make_loader
from vla_data.loader.mixture import MixturePlan
from vla_data.loader.robot import load_image
from vla_data.normalize import Normalizer
from vla_data.shards import ShardDataset
from vla_data.sources.hdf5 import HDF5Source
from vla_data.tokenizers.prompt import PromptBuilder, discretize_state, robot_prefix
from vla_data.tokenizers.text import ByteTokenizer

from .loader_data import H, loader_config, write_loader_data, write_word_level_tokenizer


@pytest.fixture(scope="module")
def data(demo_hdf5, tmp_path_factory):
    return write_loader_data(tmp_path_factory.mktemp("loader"), demo_hdf5, {"robot": "Pick_up the\nCube"})


def make_config(data, **overrides):
    sources = (
        SourceConfig("robot", (str(data / "robot"),), 0.7),
        SourceConfig("web", (str(data / "web"),), 0.3),
    )
    return loader_config(data, **{"sources": sources, "batch_size": 8, "image_size": (32, 32), **overrides})


def first_batches(loader, n):
    return [b for _, b in zip(range(n), loader, strict=False)]


def assert_batches_equal(a, b):
    for key in a:
        if isinstance(a[key], dict):
            for slot in a[key]:
                assert torch.equal(a[key][slot], b[key][slot]), (key, slot)
        else:
            assert torch.equal(a[key], b[key]), key


# -- prompt ------------------------------------------------------------------------------------
def test_vla_data_prompt_string():  # openpi's formats: tests/test_prompt_formats.py
    state = np.array([-1.0, 0.0, 0.999, 1.0, -1.5, 0.5])
    assert (
        robot_prefix("  Pick_up the\nCube ", state)
        == "Task: pick up the cube, State: 0 128 255 255 -1 192;\n"
    )
    assert robot_prefix("Pick_up", None) == "Task: pick up;\n"
    assert robot_prefix("Pick_up", None, lowercase=False) == "Task: Pick up;\n"


def test_state_discretization_edges():
    assert discretize_state(np.array([-1.0, -0.99999, 1.0, 1.2, -7.0])).tolist() == [0, 0, 255, 255, -1]
    assert discretize_state(np.array([np.nan])).tolist() == [255]  # numpy puts NaN past the last edge
    edges = np.linspace(-1, 1, 257)
    assert discretize_state(edges[:-1]).tolist() == list(range(256))  # each bin's left edge is in it


def test_robot_and_web_token_layouts():
    text = ByteTokenizer()
    builder = PromptBuilder(text, fast_vocab_size=300, mapping="append")
    sample = builder.robot("Stack", np.array([0.0]), np.array([0, 5, 299]))
    prefix = [257, *b"Task: stack, State: 128;\n"]
    expected = prefix + list(b"Action: ") + [259, 264, 558] + list(b"|") + [258]
    assert sample.tokens.tolist() == expected
    n = len(prefix)
    assert sample.ar.tolist() == [False] * n + [True] * (len(expected) - n)
    assert sample.loss.tolist() == [False] * (n + 8) + [True] * 5  # FAST ids, "|", EOS
    assert np.flatnonzero(sample.fast).tolist() == [n + 8, n + 9, n + 10]
    web = builder.web("what shape?", "circle")
    assert web.tokens.tolist() == [257, *b"what shape?", *b"circle", 258]
    assert web.loss.tolist() == [False] * 12 + [True] * 7 and not web.fast.any()


def test_tail_mapping_is_openpi_and_guards_overlap():
    paligemma = ByteTokenizer(vocab_size=257152)
    builder = PromptBuilder(paligemma, fast_vocab_size=2048, mapping="tail", skip=128)
    assert builder.fast_to_text_ids(np.array([0, 2047])).tolist() == [257023, 254976]
    with pytest.raises(VlaDataError, match="overlapping the text vocabulary"):
        PromptBuilder(ByteTokenizer(), fast_vocab_size=300, mapping="tail")


# -- robot samples -----------------------------------------------------------------------------
def test_robot_sample_values_and_action_pad_at_episode_end(data):
    loader = make_loader(make_config(data, sources=(SourceConfig("robot", (str(data / "robot"),)),)))
    robot = loader.sources[0]
    ds = ShardDataset(data / "robot")
    stats = ds.manifest.stats
    episode = ds.episode(1)
    for t, real in ((30, 10), (35, 5), (39, 1)):
        sample = robot[40 + t]
        assert sample["action_is_pad"].tolist() == [False] * real + [True] * (H - real)
        rows = np.minimum(np.arange(t, t + H), 39)
        expected = Normalizer.from_stats(stats["action"]).normalize(episode["action"][rows])
        np.testing.assert_allclose(sample["actions"][:, :14], expected, rtol=1e-6, atol=1e-6)
        assert not sample["actions"][:, 14:].any()
        assert sample["action_dim_mask"].tolist() == [True] * 14 + [False] * 2
        state = Normalizer.from_stats(stats["observation.state"]).normalize(episode["observation.state"][t])
        np.testing.assert_allclose(sample["state"][:14], state, rtol=1e-6, atol=1e-6)
        assert sample["image_masks"] == {
            "base_0_rgb": True,
            "left_wrist_0_rgb": True,
            "right_wrist_0_rgb": False,
        }
        np.testing.assert_array_equal(
            sample["images"]["left_wrist_0_rgb"],
            load_image(episode["observation.images.cam_left_wrist"][t], (32, 32)),
        )
        assert not sample["images"]["right_wrist_0_rgb"].any()
        text = bytes(i for i in sample["tokens"].tokens.tolist() if i < 256).decode()
        assert text.startswith("Task: pick up the cube, State: ") and "Action: " in text


def test_delta_actions_are_relative_to_state(data):
    loader = make_loader(
        make_config(data, sources=(SourceConfig("robot", (str(data / "robot"),)),), delta_action_dims=(0, 1))
    )
    robot = loader.sources[0]
    episode = ShardDataset(data / "robot").episode(0)
    sample = robot[5]
    raw = robot.action_norm[0].unnormalize(sample["actions"][:, :14].astype(np.float64))
    expected = episode["action"][5:15, :2] - episode["observation.state"][5, :2]
    np.testing.assert_allclose(raw[:, :2], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(raw[:, 2:], episode["action"][5:15, 2:], rtol=1e-5, atol=1e-6)


# -- batches -----------------------------------------------------------------------------------
def test_batch_contract_shapes_and_dtypes(data):
    batch = next(iter(make_loader(make_config(data))))
    B, L, D = 8, 200, 16
    assert set(batch["images"]) == {"base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb"}
    assert batch["images"]["base_0_rgb"].dtype == torch.uint8 and batch["images"]["base_0_rgb"].shape == (
        B,
        3,
        32,
        32,
    )
    for key, dtype, shape in [
        ("tokens", torch.int64, (B, L)),
        ("token_mask", torch.bool, (B, L)),
        ("token_ar_mask", torch.bool, (B, L)),
        ("token_loss_mask", torch.bool, (B, L)),
        ("fast_token_mask", torch.bool, (B, L)),
        ("state", torch.float32, (B, D)),
        ("actions", torch.float32, (B, H, D)),
        ("action_is_pad", torch.bool, (B, H)),
        ("action_dim_mask", torch.bool, (B, D)),
        ("has_actions", torch.bool, (B,)),
        ("source", torch.int64, (B,)),
    ]:
        assert batch[key].dtype == dtype and tuple(batch[key].shape) == shape, key
    web = ~batch["has_actions"]
    assert torch.equal(web, batch["source"] == 1)
    assert not batch["fast_token_mask"][web].any() and batch["action_is_pad"][web].all()
    assert (
        not batch["image_masks"]["left_wrist_0_rgb"][web].any() and batch["image_masks"]["base_0_rgb"].all()
    )
    assert (batch["tokens"][~batch["token_mask"]] == 256).all()  # right-padded with the pad id
    assert not (batch["token_loss_mask"] & ~batch["token_mask"]).any()


def test_over_long_sequences_fail_or_are_counted(data):
    with pytest.raises(VlaDataError, match=r"robot episode \d+ step \d+: \d+ tokens exceed max_tokens=60"):
        next(iter(make_loader(make_config(data, max_tokens=60))))
    batch = next(iter(make_loader(make_config(data, max_tokens=60, truncate=True))))
    assert batch["truncated"][batch["has_actions"]].all()
    assert (batch["token_mask"].sum(dim=1)[batch["truncated"]] == 60).all()


def test_ki_attention_mask_by_hand():
    # sample 0 (robot): P P F F pad pad | E E ; sample 1 (web): P F F pad pad pad | (no E)
    batch = {
        "token_mask": torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool),
        "token_ar_mask": torch.tensor([[0, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0]], dtype=torch.bool),
        "has_actions": torch.tensor([True, False]),
        "actions": torch.zeros(2, 2, 3),
    }
    mask, positions = ki_attention_mask(batch)
    robot = [
        # P  P  F  F  .  .  E  E
        [1, 1, 0, 0, 0, 0, 0, 0],  # P
        [1, 1, 0, 0, 0, 0, 0, 0],  # P
        [1, 1, 1, 0, 0, 0, 0, 0],  # F sees P and itself
        [1, 1, 1, 1, 0, 0, 0, 0],  # F sees P and F before it
        [0, 0, 0, 0, 1, 0, 0, 0],  # pad: itself only
        [0, 0, 0, 0, 0, 1, 0, 0],
        [1, 1, 0, 0, 0, 0, 1, 1],  # E sees P and E, never F
        [1, 1, 0, 0, 0, 0, 1, 1],
    ]
    web = [
        [1, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1, 0],  # no expert for web samples: padding
        [0, 0, 0, 0, 0, 0, 0, 1],
    ]
    assert mask[0].int().tolist() == robot
    assert mask[1].int().tolist() == web
    assert positions[0].tolist() == [0, 1, 2, 3, 0, 0, 2, 3]
    assert positions[1].tolist() == [0, 1, 2, 0, 0, 0, 0, 0]


def test_ki_mask_on_a_real_batch_separates_fast_and_expert(data):
    batch = next(iter(make_loader(make_config(data))))
    mask, _ = ki_attention_mask(batch)
    L = batch["tokens"].shape[1]
    fast = batch["fast_token_mask"]
    expert_to_text = mask[:, L:, :L]
    assert not (expert_to_text & fast[:, None, :]).any()  # E never sees FAST
    assert not (mask[:, :L, L:] & batch["token_mask"][:, :, None]).any()  # text never sees E


# -- mixture -----------------------------------------------------------------------------------
def test_random_mixture_proportions_within_binomial_tolerance():
    plan = MixturePlan(
        sizes=(1000, 500),
        weights=(0.7, 0.3),
        batch_size=32,
        samples_per_epoch=32 * 500,
        mode="random",
        seed=3,
    )
    sources = np.array([s for b in range(plan.batches_per_rank) for s, _ in plan.batch(0, b)])
    n = len(sources)
    assert abs((sources == 0).mean() - 0.7) < 4 * np.sqrt(0.7 * 0.3 / n)


def test_stratified_mixture_is_exact_every_batch():
    plan = MixturePlan(
        sizes=(1000, 500, 300),
        weights=(0.5, 0.3, 0.2),
        batch_size=8,
        samples_per_epoch=8 * 200,
        mode="stratified",
    )
    cumulative = np.zeros(3)
    for b in range(plan.batches_per_rank):
        counts = np.bincount([s for s, _ in plan.batch(0, b)], minlength=3)
        assert counts.sum() == 8 and np.all(np.abs(counts - np.array([4, 2.4, 1.6])) < 1)
        cumulative += counts
        assert np.all(np.abs(cumulative - np.array([0.5, 0.3, 0.2]) * 8 * (b + 1)) < 1)


def test_sources_are_passed_without_repeats_within_a_pass():
    plan = MixturePlan(sizes=(50, 50), weights=(1, 1), batch_size=10, samples_per_epoch=90, mode="stratified")
    keys = [k for b in range(plan.batches_per_rank) for k in plan.batch(0, b)]
    for s in (0, 1):
        seen = [i for source, i in keys if source == s]
        assert len(set(seen)) == len(seen)
    assert plan.batch(1, 0) != plan.batch(0, 0)  # new epoch, new order


def test_ranks_are_disjoint_and_cover_the_epoch():
    common = dict(
        sizes=(200, 100), weights=(0.7, 0.3), batch_size=4, samples_per_epoch=240, mode="random", seed=1
    )
    single = MixturePlan(**common)
    world = MixturePlan(**common, world_size=3)
    everything = [single.batch(0, b) for b in range(single.batches_per_rank)]
    per_rank = [[world.batch(0, b, rank) for b in range(world.batches_per_rank)] for rank in range(3)]
    interleaved = [per_rank[g % 3][g // 3] for g in range(len(everything))]
    assert interleaved == everything


def test_same_batches_with_zero_and_two_workers(data):
    a = first_batches(make_loader(make_config(data, num_workers=0)), 4)
    b = first_batches(make_loader(make_config(data, num_workers=2)), 4)
    for x, y in zip(a, b, strict=True):
        assert_batches_equal(x, y)


def test_resume_mid_epoch_and_across_epochs(data):
    config = make_config(data, samples_per_epoch=8 * 5, mode="stratified")
    reference = make_loader(config)
    stream = first_batches(reference, 5) + first_batches(reference, 3)  # epoch 0, then 3 of epoch 1
    assert reference.state_dict()["epoch"] == 1 and reference.state_dict()["batch"] == 3

    interrupted = make_loader(config)
    first_batches(interrupted, 3)
    saved = json.loads(json.dumps(interrupted.state_dict()))
    resumed = make_loader(config)
    resumed.load_state_dict(saved)
    rest = first_batches(resumed, 2) + first_batches(resumed, 3)
    for x, y in zip(stream[3:], rest, strict=True):
        assert_batches_equal(x, y)
    with pytest.raises(VlaDataError, match="seed"):
        make_loader(dataclasses.replace(config, seed=9)).load_state_dict(saved)


# -- config and cache ---------------------------------------------------------------------------
def test_json_config_round_trip_and_unknown_keys(data, tmp_path):
    config = make_config(data)
    config.save(tmp_path / "loader.json")
    assert LoaderConfig.load(tmp_path / "loader.json") == config
    assert len(make_loader(tmp_path / "loader.json")) == len(make_loader(config))
    raw = json.loads((tmp_path / "loader.json").read_text())
    raw["batchsize"] = 4
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(VlaDataError, match=r"unknown key .batchsize. \(did you mean .batch_size.\?\)"):
        make_loader(tmp_path / "bad.json")
    with pytest.raises(VlaDataError, match="need fast_tokenizer"):
        LoaderConfig(sources=(SourceConfig("robot", ("x",)),))


def test_fast_cache_is_used_and_gives_the_same_tokens(data, tmp_path):
    config = make_config(data, sources=(SourceConfig("robot", (str(data / "robot"),)),))
    uncached = first_batches(make_loader(dataclasses.replace(config, use_fast_cache=False)), 3)
    config.save(tmp_path / "loader.json")
    result = CliRunner().invoke(
        main, ["tokenizer", "cache", "--config", str(tmp_path / "loader.json"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    loader = make_loader(config)
    assert loader.sources[0].cache_paths[0] is not None
    for x, y in zip(uncached, first_batches(loader, 3), strict=True):
        assert_batches_equal(x, y)
    other = make_loader(dataclasses.replace(config, horizon=5))
    assert other.sources[0].cache_paths[0] is None  # a different horizon never reads this cache


def test_hugging_face_text_tokenizer_json(data, tmp_path):
    corpus = ["Task: pick up the cube, State: 1 2 3;", "Action: |", "what shape is shown? circle square"]
    tokenizer = write_word_level_tokenizer(tmp_path / "tokenizer.json", corpus)
    loader = make_loader(make_config(data, text_tokenizer=tokenizer))
    text = loader.prompt.text
    assert (text.pad_id, text.bos_id, text.eos_id) == (0, 1, 2)
    batch = next(iter(loader))
    assert (batch["tokens"][:, 0] == 1).all()  # BOS first
    fast_ids = batch["tokens"][batch["fast_token_mask"]]
    assert (fast_ids >= text.vocab_size).all()  # append mapping: FAST rows after the text vocabulary
    with pytest.raises(VlaDataError, match="no token '<s>'"):
        make_loader(
            make_config(
                data,
                text_tokenizer=str(tmp_path / "tokenizer.json"),
                text_special_tokens={"bos": "<s>", "eos": "<eos>", "pad": "<pad>"},
            )
        )


def test_persistent_workers_continue_where_the_loop_stopped(data):
    config = make_config(
        data, num_workers=2, persistent_workers=True, pin_memory=False, samples_per_epoch=8 * 6
    )
    reference = first_batches(
        make_loader(dataclasses.replace(config, num_workers=0, persistent_workers=False)), 6
    )
    loader = make_loader(config)
    got = first_batches(loader, 2) + first_batches(loader, 4)
    for x, y in zip(reference, got, strict=True):
        assert_batches_equal(x, y)
    assert len(first_batches(loader, 2)) == 2  # the next epoch starts
    assert loader.state_dict()["epoch"] == 1


def test_tail_mapping_keeps_clear_of_location_tokens(tmp_path):
    from tokenizers import Tokenizer, models

    from vla_data.tokenizers.text import HFTokenizer

    # a PaliGemma-like tail: 1024 <locNNNN> then 128 <segNNN> tokens at the end of the vocabulary
    words = ["<pad>", "<eos>", "<bos>"] + [f"w{i}" for i in range(4000)]
    words += [f"<loc{i:04d}>" for i in range(1024)] + [f"<seg{i:03d}>" for i in range(128)]
    text = HFTokenizer(Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>")))
    assert len(text.reserved_ids) == 1152 and text.reserved_ids[0] == 4003
    with pytest.raises(
        VlaDataError, match=r"over 1024 location/segmentation tokens .* set fast_skip >= 1152"
    ):
        PromptBuilder(text, fast_vocab_size=1024, mapping="tail", skip=128)
    builder = PromptBuilder(text, fast_vocab_size=1024, mapping="tail", skip=1152)
    assert builder.fast_to_text_ids(np.array([0])).tolist() == [len(words) - 1 - 1152]


def test_shard_block_loader_windows_shards_and_resumes_exactly(data, demo_hdf5, tmp_path):
    from vla_data.convert import ConvertOptions
    from vla_data.loader import shard_blocks

    convert(
        HDF5Source.from_paths(demo_hdf5, layout="aloha"), tmp_path / "robot", ConvertOptions(shard_bytes=1)
    )
    config = make_config(
        data,
        sources=(SourceConfig("robot", (str(tmp_path / "robot"),)),),
        shuffle="shard_block",
        shuffle_window=1,
        samples_per_epoch=8 * 5,
    )
    loader = make_loader(config)
    assert shard_blocks(loader.sources[0]) == (0, 40, 80, 120)  # one episode per shard
    shards = [{i // 40 for _, i in loader.plan.batch(0, b)} for b in range(5)]
    assert all(len(s) == 1 for s in shards) and len(set.union(*shards)) == 1  # 40 samples = 5 batches
    stream = first_batches(loader, 5)
    two_workers = first_batches(make_loader(dataclasses.replace(config, num_workers=2)), 5)
    for x, y in zip(stream, two_workers, strict=True):
        assert_batches_equal(x, y)
    resumed = make_loader(config)
    resumed.load_state_dict({**loader.state_dict(), "epoch": 0, "batch": 3})
    for x, y in zip(stream[3:], first_batches(resumed, 2), strict=True):
        assert_batches_equal(x, y)
    with pytest.raises(VlaDataError, match="shuffle"):
        make_loader(dataclasses.replace(config, shuffle="random")).load_state_dict(loader.state_dict())


def test_fast_cache_is_written_in_record_batches(data, tmp_path):
    import shutil

    import pyarrow as pa

    from vla_data.loader.fast_cache import build_fast_cache

    shutil.copytree(data / "robot", tmp_path / "robot")
    config = make_config(data, sources=(SourceConfig("robot", (str(tmp_path / "robot"),)),))
    robot = make_loader(dataclasses.replace(config, use_fast_cache=False)).sources[0]
    path = build_fast_cache(robot, 0, batch_rows=50)
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        sizes = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]
        ids = reader.read_all().column("ids")
    assert sizes == [80, 40]  # 40-step episodes, a batch closes once it reaches 50 rows
    for step in (0, 39, 41, 119):
        episode, t = robot.datasets[0].locate(step)
        actions = robot.datasets[0].episode(episode, ["action"])["action"]
        chunk, _ = robot.normalized_chunks(0, actions.reshape(len(actions), -1), None, np.array([t]))
        assert ids[step].as_py() == robot.fast.encode(chunk, on_error="clip")[0]
