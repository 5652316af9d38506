"""Fit a FAST tokenizer on a converted dataset and round-trip a batch of chunks.

python examples/fit_fast_tokenizer.py out/ tokenizer/
"""

import sys

from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

dataset, tokenizer_dir = sys.argv[1], sys.argv[2]
chunks = sample_chunks([dataset], ChunkSpec(seconds=1.0, max_chunks=20_000))  # [N, H, D], quantile-normalized
fast = FastTokenizer.fit(chunks.values, vocab_size=1024)
fast.save_pretrained(tokenizer_dir)

ids = fast.encode(chunks.values[:8])  # one id list per chunk
actions, valid = fast.decode(ids, horizon=chunks.values.shape[1], action_dim=chunks.values.shape[2])
print("tokens per chunk:", [len(x) for x in ids])
print(
    "all decoded exactly:", bool(valid.all()), "max abs error:", float(abs(actions - chunks.values[:8]).max())
)
