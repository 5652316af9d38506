"""Benchmark harness behind `vla-data bench`. Every figure is a median over repeats, reported next
to a bound measured in the same run, because machines here are noisy."""

from vla_data.bench.convert import (
    bench_convert,
    bench_convert_lerobot,
    bench_convert_rlds,
    format_convert_table,
    format_lerobot_table,
    format_rlds_table,
)
from vla_data.bench.loader import bench_loader, format_loader_table
from vla_data.bench.tokenizer import (
    bench_tokenizer,
    compare_fast_modes,
    format_modes_table,
    format_tokenizer_table,
)

__all__ = [
    "bench_convert",
    "bench_convert_lerobot",
    "bench_convert_rlds",
    "bench_loader",
    "bench_tokenizer",
    "compare_fast_modes",
    "format_convert_table",
    "format_lerobot_table",
    "format_loader_table",
    "format_modes_table",
    "format_rlds_table",
    "format_tokenizer_table",
]
