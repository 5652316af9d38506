"""vla-data: robot demonstration data to fast, exact training batches for knowledge-insulated VLAs.

from vla_data import ConvertOptions, HDF5Source, ShardDataset, FastTokenizer, make_loader
from vla_data.convert import convert   # the module of the same name shadows a top-level alias
"""

from importlib import import_module

__version__ = "0.1.0"

from vla_data.episode import Episode  # noqa: E402
from vla_data.errors import FormatVersionError, ShardError, SourceError, TokenizerError, VlaDataError  # noqa: E402
from vla_data.normalize import Normalizer  # noqa: E402
from vla_data.shards import Manifest, ShardDataset, ShardWriter, load_manifest, verify_dataset  # noqa: E402
from vla_data.stats import RunningStats  # noqa: E402

# Names whose modules pull heavy imports (torch, PyAV, h5py) load on first use.
_LAZY = {
    "ConvertOptions": "vla_data.convert",
    "HDF5Source": "vla_data.sources.hdf5",
    "LeRobotSource": "vla_data.sources.lerobot",
    "RLDSSource": "vla_data.sources.rlds",
    "WebSource": "vla_data.sources.web",
    "merge_datasets": "vla_data.shards.merge",
    "FastTokenizer": "vla_data.tokenizers.fast",
    "BinningTokenizer": "vla_data.tokenizers.binning",
    "make_loader": "vla_data.loader",
    "LoaderConfig": "vla_data.loader",
    "SourceConfig": "vla_data.loader",
    "ki_attention_mask": "vla_data.loader",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vla_data' has no attribute {name!r}")


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
    *_LAZY,
]
