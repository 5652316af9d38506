"""The datasets the loader tests read: robot episodes converted from the ALOHA sample, web samples,
and a FAST tokenizer fitted on the robot actions; and the loader settings those tests share."""

from pathlib import Path

from vla_data.convert import convert
from vla_data.loader import LoaderConfig
from vla_data.samples import write_web_sample
from vla_data.sources.hdf5 import HDF5Source
from vla_data.sources.web import WebSource
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

H = 10  # the action horizon the tokenizer is fitted for and the loaders read


def write_loader_data(root: Path, demo_hdf5: Path, robots: dict[str, str]) -> Path:
    """`root/<name>` for each `name: task` of `robots` (must include "robot"), converted from the
    ALOHA sample with that task; `root/fast`, fitted on `root/robot`'s chunks of H steps;
    `root/web`, 24 web samples of 32x32 images of every kind."""
    for name, task in robots.items():
        convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", task=task), root / name)
    chunks = sample_chunks([root / "robot"], ChunkSpec(horizon=H))
    FastTokenizer.fit(chunks.values, vocab_size=300).save_pretrained(root / "fast")
    convert(
        WebSource(str(write_web_sample(root / "raw_web", samples=24, size=32)), kind_field="kind"),
        root / "web",
    )
    return root


def loader_config(data: Path, **settings) -> LoaderConfig:
    """A loader over datasets written by `write_loader_data`: its FAST ids appended to the prompt,
    H steps, 16 action dims, 200 tokens; `settings` (the sources among them) go on top."""
    shared = dict(
        fast_tokenizer=str(data / "fast"), fast_mapping="append", max_tokens=200, horizon=H, action_dim=16
    )
    return LoaderConfig(**{**shared, **settings})


def write_word_level_tokenizer(path: Path, corpus: list[str]) -> str:
    """A Hugging Face tokenizer.json at `path`: whitespace words of `corpus`, with <pad> <bos> <eos>
    <unk> as ids 0-3. Returns the path as a string, as a loader config names it."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        corpus, trainers.WordLevelTrainer(special_tokens=["<pad>", "<bos>", "<eos>", "<unk>"])
    )
    tokenizer.save(str(path))
    return str(path)
