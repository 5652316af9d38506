"""Object storage against a real S3 server (SeaweedFS on 127.0.0.1, the `s3_server` fixture):
cached and uncached reads, loader batches, eviction, a cache shared by processes, bytes fetched."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import uuid

import numpy as np
import pyarrow as pa
import pytest
import torch

from vla_data.convert import ConvertOptions, convert, upload_dataset
from vla_data.loader import LoaderConfig, SourceConfig, make_loader
from vla_data.samples import write_aloha_sample, write_web_sample
from vla_data.shards import ShardDataset
from vla_data.shards.cache import ShardCache
from vla_data.shards.ipc_layout import (
    TAIL,
    footer_size,
    record_batch_blocks,
    schema_message_span,
)
from vla_data.sources.hdf5 import HDF5Source
from vla_data.sources.web import WebSource
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

H = 8
SHARD_BYTES = 60_000  # several shards per dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory, s3_server):
    """The same robot and web datasets locally and under s3://bucket/<random>/, and a FAST tokenizer."""
    root = tmp_path_factory.mktemp("s3data")
    write_aloha_sample(root / "aloha", episodes=6, steps=30, height=48, width=64)
    options = ConvertOptions(shard_bytes=SHARD_BYTES)
    convert(HDF5Source.from_paths(root / "aloha", layout="aloha", task="stack"), root / "robot", options)
    web = WebSource(str(write_web_sample(root / "raw_web", samples=24, size=32)), kind_field="kind")
    convert(web, root / "web", options)
    FastTokenizer.fit(
        sample_chunks([root / "robot"], ChunkSpec(horizon=H)).values, vocab_size=300
    ).save_pretrained(root / "fast")
    prefix = f"{s3_server.bucket}/{uuid.uuid4().hex[:8]}"
    for name in ("robot", "web"):
        upload_dataset(root / name, s3_server.filesystem(), f"{prefix}/{name}")
    return root, f"s3://{prefix}"


def same_rows(a: pa.Table, b: pa.Table) -> None:
    assert a.column_names == b.column_names
    for name in a.column_names:
        assert a.column(name).to_pylist() == b.column(name).to_pylist(), name


def test_remote_reads_equal_local_with_and_without_cache(data, s3_server, tmp_path):
    root, uri = data
    local = ShardDataset(root / "robot")
    options = s3_server.storage_options
    cached = ShardDataset(f"{uri}/robot", cache_dir=tmp_path / "cache", storage_options=options)
    direct = ShardDataset(f"{uri}/robot", cache_limit=0, storage_options=options)
    assert len(local.manifest.shards) >= 3
    columns = ["action", "observation.images.cam_high", "frame_index"]
    for e in range(local.num_episodes):
        same_rows(local.episode_table(e), cached.episode_table(e))
        same_rows(local.episode_table(e), direct.episode_table(e))
        same_rows(local.rows(e, 3, 9, columns), direct.rows(e, 3, 9, columns))
        same_rows(local.rows(e, 29, 30, columns), direct.rows(e, 29, 30, columns))
    cached_files = sorted(p.name for p in (tmp_path / "cache").glob("*.arrow"))
    assert cached_files == sorted(f"{s.sha256}.arrow" for s in local.manifest.shards)


def loader_config(root, robot: str, web: str, **overrides) -> LoaderConfig:
    config = LoaderConfig(
        sources=(SourceConfig("robot", (robot,), 0.7), SourceConfig("web", (web,), 0.3)),
        fast_tokenizer=str(root / "fast"),
        fast_mapping="append",
        batch_size=6,
        max_tokens=200,
        horizon=H,
        action_dim=16,
        image_size=(32, 32),
        use_fast_cache=False,
    )
    return dataclasses.replace(config, **overrides)


def batches(config: LoaderConfig, n: int) -> list[dict]:
    return [b for _, b in zip(range(n), make_loader(config), strict=False)]


def assert_same_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for key in x:
            if isinstance(x[key], dict):
                assert all(torch.equal(x[key][s], y[key][s]) for s in x[key]), key
            else:
                assert torch.equal(x[key], y[key]), key


def test_loader_from_s3_gives_the_local_batches(data, s3_server, tmp_path):
    root, uri = data
    expected = batches(loader_config(root, str(root / "robot"), str(root / "web")), 6)
    remote = loader_config(root, f"{uri}/robot", f"{uri}/web", storage_options=s3_server.storage_options)
    cached = dataclasses.replace(remote, cache_dir=str(tmp_path / "cache"), num_workers=2)
    assert_same_batches(expected, batches(cached, 6))
    assert_same_batches(expected, batches(dataclasses.replace(remote, cache_limit=0), 6))
    assert "secret" not in repr(remote) and s3_server.secret_key not in repr(remote)


def test_eviction_keeps_the_cache_under_its_limit(data, s3_server, tmp_path):
    root, uri = data
    shards = ShardDataset(root / "robot").manifest.shards
    limit = 2 * max(s.bytes for s in shards)  # two shards of the several the dataset has
    ds = ShardDataset(
        f"{uri}/robot", cache_dir=tmp_path, cache_limit=limit, storage_options=s3_server.storage_options
    )
    local = ShardDataset(root / "robot")
    cache = ShardCache(tmp_path, limit)
    for e in [*range(ds.num_episodes), 0, 5, 1]:
        same_rows(local.episode_table(e), ds.episode_table(e))
        assert cache.size() <= limit
    fetched_shard_bytes = ds.fetched.bytes
    assert fetched_shard_bytes > sum(s.bytes for s in shards)  # evicted shards were fetched again
    with pytest.raises(ValueError, match="cannot hold"):
        ShardDataset(
            f"{uri}/robot",
            cache_dir=tmp_path,
            cache_limit=limit // 3,
            storage_options=s3_server.storage_options,
        )


READER = """
import hashlib, json, sys
from vla_data.shards import ShardDataset
ds = ShardDataset(sys.argv[1], cache_dir=sys.argv[2], cache_limit=10**9)
digest = hashlib.sha256()
for _ in range(3):
    for e in range(ds.num_episodes):
        for column in ds.episode_table(e).columns:
            digest.update(repr(column.to_pylist()).encode())
print(json.dumps({"digest": digest.hexdigest(), "fetched": ds.fetched.bytes}))
"""


def test_two_processes_share_one_cache_directory(data, s3_server, tmp_path):
    root, uri = data
    cache = tmp_path / "shared"
    env = s3_server.env()  # credentials and endpoint through the AWS environment variables
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", READER, f"{uri}/robot", str(cache)], env=env, stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    local = ShardDataset(root / "robot")
    assert results[0]["digest"] == results[1]["digest"]
    shard_bytes = sum(s.bytes for s in local.manifest.shards)
    metadata = (root / "robot" / "manifest.json").stat().st_size + (
        root / "robot" / "episodes.arrow"
    ).stat().st_size
    # every shard was downloaded by exactly one of the two processes
    assert sum(r["fetched"] for r in results) == shard_bytes + 2 * metadata
    assert sorted(p.name for p in cache.glob("*.arrow")) == sorted(
        f"{s.sha256}.arrow" for s in local.manifest.shards
    )
    assert not list(cache.glob("*.part"))


def metadata_bytes(path, batch: int, first_in_shard: bool) -> int:
    """Arrow metadata a reader must fetch: the batch's header, plus footer and schema once per shard."""
    data = path.read_bytes()
    footer_len = footer_size(data[-TAIL:])
    blocks = record_batch_blocks(data[len(data) - TAIL - footer_len : len(data) - TAIL])
    total = int(blocks[batch][1])
    if first_in_shard:
        total += TAIL + footer_len + 16 + schema_message_span(data[:16])[1]
    return total


def test_uncached_robot_sample_fetches_its_own_bytes(data, s3_server):
    root, uri = data
    config = loader_config(
        root, f"{uri}/robot", f"{uri}/web", cache_limit=0, storage_options=s3_server.storage_options
    )
    robot = make_loader(config).sources[0]
    ds = robot.datasets[0]
    local = ShardDataset(root / "robot")
    seen_shards, seen_batches = set(), set()
    rng = np.random.default_rng(0)
    for index in rng.choice(len(ds), 25, replace=False):
        episode, t = ds.locate(int(index))
        shard, batch = int(ds.episode_shard[episode]), int(ds.episode_batch[episode])
        before = ds.fetched.bytes
        robot[int(index)]
        fetched = ds.fetched.bytes - before
        stop = min(t + H, int(ds.episode_length[episode]))
        own = local.rows(episode, t, stop, ["action", "observation.state"]).nbytes
        frames = local.rows(
            episode, t, t + 1, [n for n in ds.features if n.startswith("observation.images.")]
        )
        own += sum(len(v) for column in frames.columns for v in column.to_pylist())
        meta = (
            0
            if (shard, batch) in seen_batches
            else metadata_bytes(
                root / "robot" / ds.manifest.shards[shard].file, batch, shard not in seen_shards
            )
        )
        seen_shards.add(shard)
        seen_batches.add((shard, batch))
        whole_episode = local.episode_table(episode).nbytes
        assert fetched <= 2 * (own + meta), (index, fetched, own, meta)
        assert fetched < whole_episode / 4


def test_compressed_shards_decode_one_batch_of_the_asked_columns(data, tmp_path, s3_server):
    root, _ = data
    convert(
        HDF5Source.from_paths(root / "aloha", layout="aloha", task="stack"),
        tmp_path / "zstd",
        ConvertOptions(compression="zstd", shard_bytes=SHARD_BYTES),
    )
    plain, packed = ShardDataset(root / "robot"), ShardDataset(tmp_path / "zstd")
    for e in range(plain.num_episodes):
        same_rows(plain.rows(e, 2, 7, ["action"]), packed.rows(e, 2, 7, ["action"]))
        same_rows(plain.episode_table(e), packed.episode_table(e))
    for access in packed._open.values():
        assert access[0].table is None and len(access[0]._decoded) <= 4  # never the whole shard
        assert all(t.num_rows <= 30 for t in access[0]._decoded.values())
    prefix = f"{s3_server.bucket}/{uuid.uuid4().hex[:8]}/zstd"
    upload_dataset(tmp_path / "zstd", s3_server.filesystem(), prefix)
    direct = ShardDataset(f"s3://{prefix}", cache_limit=0, storage_options=s3_server.storage_options)
    for e in (0, 3, 5):
        same_rows(
            plain.rows(e, 4, 6, ["action", "observation.images.cam_low"]),
            direct.rows(e, 4, 6, ["action", "observation.images.cam_low"]),
        )


def test_uncached_web_sample_fetches_its_own_row(data, s3_server):
    from vla_data.sources.web_sample import WEB_FEATURES

    root, uri = data
    config = loader_config(
        root, f"{uri}/robot", f"{uri}/web", cache_limit=0, storage_options=s3_server.storage_options
    )
    web = make_loader(config).sources[1]
    ds, local = web.datasets[0], ShardDataset(root / "web")
    seen_shards, seen_batches = set(), set()
    for index in range(0, len(ds), 3):
        episode, row = ds.locate(index)
        shard, batch = int(ds.episode_shard[episode]), int(ds.episode_batch[episode])
        before = ds.fetched.bytes
        sample = web[index]
        fetched = ds.fetched.bytes - before
        own = local.rows(episode, row, row + 1, list(WEB_FEATURES)).nbytes
        path = root / "web" / ds.manifest.shards[shard].file
        meta = 0 if (shard, batch) in seen_batches else metadata_bytes(path, batch, shard not in seen_shards)
        seen_shards.add(shard)
        seen_batches.add((shard, batch))
        assert sample["image_masks"]["base_0_rgb"]
        assert fetched <= 2 * (own + meta), (index, fetched, own, meta)
        assert fetched - meta < local.episode_table(episode).nbytes / 10  # 24 samples per episode
