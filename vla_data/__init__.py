"""vla-data: robot demonstration data to fast, exact training batches for knowledge-insulated VLAs.

from vla_data import ConvertOptions, HDF5Source, ShardDataset, FastTokenizer, convert, make_loader

convert(HDF5Source.from_paths("episodes/", layout="aloha", task="fold"), "out/", ConvertOptions(workers=2))
ShardDataset("out/")[0]   # one step: numpy numbers, uint8 images
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
    "HDF5Source": "vla_data.sources.hdf5",
    "LeRobotSource": "vla_data.sources.lerobot",
    "RLDSSource": "vla_data.sources.rlds",
    "WebSource": "vla_data.sources.web",
    "WebSample": "vla_data.sources.web_sample",
    "read_web_sample": "vla_data.sources.web_sample",
    "merge_datasets": "vla_data.shards.merge",
    "FastTokenizer": "vla_data.tokenizers.fast",
    "BinningTokenizer": "vla_data.tokenizers.binning",
    "make_loader": "vla_data.loader",
    "LoaderConfig": "vla_data.loader",
    "SourceConfig": "vla_data.loader",
    "ki_attention_mask": "vla_data.loader",
}

# `vla_data.convert` is the function: importing the module first and then the name rebinds the
# package attribute the import system set to the module (`from vla_data.convert import ...` still works).
from vla_data.convert import ConvertOptions, convert  # noqa: E402


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vla_data' has no attribute {name!r}")


__all__ = [
    "ConvertOptions",
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
    "convert",
    "load_manifest",
    "verify_dataset",
    *_LAZY,
]
