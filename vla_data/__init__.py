"""vla-data: robot demonstration data to fast, exact training batches for knowledge-insulated VLAs."""

__version__ = "0.1.0"

from vla_data.episode import Episode  # noqa: E402
from vla_data.errors import FormatVersionError, ShardError, SourceError, TokenizerError, VlaDataError  # noqa: E402
from vla_data.normalize import Normalizer  # noqa: E402
from vla_data.shards import Manifest, ShardDataset, ShardWriter, load_manifest, verify_dataset  # noqa: E402
from vla_data.stats import RunningStats  # noqa: E402

__all__ = [
    "Episode",
    "FormatVersionError",
    "Manifest",
    "Normalizer",
    "RunningStats",
    "ShardDataset",
    "ShardError",
    "ShardWriter",
    "SourceError",
    "TokenizerError",
    "VlaDataError",
    "load_manifest",
    "verify_dataset",
]
