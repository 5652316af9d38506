"""The shard format: writer, memory-mapped reader, manifest and verification."""

from vla_data.shards.manifest import Manifest, ShardInfo, load_manifest
from vla_data.shards.reader import ShardDataset, stats_from_shards
from vla_data.shards.verify import verify_dataset
from vla_data.shards.writer import ShardWriter

__all__ = [
    "Manifest",
    "ShardDataset",
    "ShardInfo",
    "ShardWriter",
    "load_manifest",
    "stats_from_shards",
    "verify_dataset",
]
