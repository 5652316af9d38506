"""Action tokenizers (FAST and the naive binning baseline) and chunk sampling from shards."""

from vla_data.tokenizers.binning import BinningTokenizer
from vla_data.tokenizers.fast import FastTokenizer

__all__ = ["BinningTokenizer", "FastTokenizer"]
