"""Reused batch memory never overwrites what the caller still holds.

DataLoader workers hand out shared-memory segments again once the main process has dropped every
tensor of a batch (`loader/shared_buffers.py`), the main process reuses batch buffers nothing
references (`BufferPool`). Here real workers run on a real converted dataset while the caller keeps
whole batches, views, slices, `.numpy()` arrays, tensors moved into its own containers, across
prefetch depths, epochs, early breaks, resumes and two iterations at once. Every kept piece must
still equal its clone taken when it was yielded, and every batch the reference batch of a
single-process loader; a kept piece's segment (its inode, read from /proc/self/maps) must never
come back while the piece lives. Each test also checks that segments WERE reused for the batches
it dropped, so it cannot pass because reuse silently stopped."""

import dataclasses
import gc
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from vla_data.convert import convert
from vla_data.loader import LoaderConfig, SourceConfig, make_loader
from vla_data.loader.shared_buffers import MAGIC
from vla_data.samples import write_web_sample
from vla_data.sources.hdf5 import HDF5Source
from vla_data.sources.web import WebSource
from vla_data.tokenizers import FastTokenizer
from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

H = 10
BATCHES = 10
SLOT = "base_0_rgb"


@pytest.fixture(scope="module")
def data(demo_hdf5, tmp_path_factory):
    root = tmp_path_factory.mktemp("segments")
    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", task="pick up the cube"), root / "robot")
    chunks = sample_chunks([root / "robot"], ChunkSpec(horizon=H))
    FastTokenizer.fit(chunks.values, vocab_size=300).save_pretrained(root / "fast")
    convert(
        WebSource(str(write_web_sample(root / "raw_web", samples=24, size=32)), kind_field="kind"),
        root / "web",
    )
    return root


def make_config(data, **overrides):
    base = dict(
        sources=(
            SourceConfig("robot", (str(data / "robot"),), 0.7),
            SourceConfig("web", (str(data / "web"),), 0.3),
        ),
        fast_tokenizer=str(data / "fast"),
        fast_mapping="append",
        batch_size=8,
        max_tokens=200,
        horizon=H,
        action_dim=16,
        image_size=(48, 64),
        samples_per_epoch=8 * BATCHES,
        num_workers=2,
    )
    return LoaderConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def reference(data):
    """Three epochs of batches from a single-process loader (each a private copy)."""
    loader = make_loader(make_config(data, num_workers=0))
    return [[clone(b) for b in loader] for _ in range(3)]


def with_prefetch(loader, prefetch_factor):
    """The loader's DataLoader again, with another prefetch depth (not a config option)."""
    dl = loader.dataloader
    loader.dataloader = DataLoader(
        dl.dataset,
        batch_sampler=dl.batch_sampler,
        collate_fn=dl.collate_fn,
        num_workers=dl.num_workers,
        prefetch_factor=prefetch_factor,
        persistent_workers=dl.persistent_workers,
    )
    return loader


def clone(value):
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.clone()
    return value.copy()  # numpy


def assert_equal(got, expected, where=""):
    if isinstance(expected, dict):
        assert list(got) == list(expected), where
        for key in expected:
            assert_equal(got[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_equal(a, b, f"{where}[{i}]")
    else:
        a, b = torch.as_tensor(got), torch.as_tensor(expected)
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where}: kept data changed (overwritten by a later batch)"


KEEP = {
    "batch": lambda b: b,
    "view": lambda b: b["images"][SLOT][1:3, :, 4:20],
    "slice": lambda b: b["tokens"][2],
    "numpy": lambda b: b["actions"].numpy(),
    "numpy slice": lambda b: b["images"][SLOT].numpy()[3, ::2],
    "moved": lambda b: [b["state"], {"mask": b["token_mask"], "image": b["images"][SLOT][0]}],
    "restacked": lambda b: default_collate([{"a": b["actions"][i], "t": b["tokens"][i]} for i in range(8)]),
}


def segment(batch):
    """(inode, path) of the memory mapping that holds the batch's buffer in this process."""
    pointer = batch["tokens"].untyped_storage().data_ptr()
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, _, _, _, inode, *path = line.split()
            low, high = (int(x, 16) for x in span.split("-"))
            if low <= pointer < high:
                return int(inode), " ".join(path)
    raise AssertionError("batch memory not found in /proc/self/maps")


def header(batch):
    storage = batch["tokens"].untyped_storage()
    return torch.empty(0, dtype=torch.uint8).set_(storage)[:32].view(torch.int64).tolist()


class Keeper:
    """Takes batches as they are yielded: checks each against its reference, keeps `what` of the
    ones `keep(i)` says (with a clone), and watches that no kept segment comes back."""

    def __init__(self, what="batch"):
        self.what, self.kept, self.live, self.seen = what, [], set(), []

    def take(self, batch, expected, keep=True, where=""):
        if expected is not None:
            assert_equal(batch, expected, where)
        inode, path = segment(batch)
        assert inode not in self.live, f"{where}: a batch came in a segment the caller still holds"
        self.seen.append((inode, header(batch)[0] == MAGIC))
        if keep:
            piece = KEEP[self.what](batch)
            self.kept.append((where, piece, clone(piece)))
            if "/torch_" in path and self.what != "restacked":  # a copy holds no segment
                self.live.add(inode)

    def check(self):
        for where, piece, copy in self.kept:
            assert_equal(piece, copy, f"{where} kept as {self.what}")

    def reused(self):
        """Pooled segments that came back (the test exercised reuse)."""
        pooled = [inode for inode, magic in self.seen if magic]
        return len(pooled) - len(set(pooled))


@pytest.mark.parametrize("what", list(KEEP))
def test_kept_pieces_of_every_other_batch_stay_intact(data, reference, what):
    keeper = Keeper(what)
    for i, batch in enumerate(make_loader(make_config(data))):
        keeper.take(batch, reference[0][i], keep=i % 2 == 0, where=f"batch {i}")
        del batch
    keeper.check()
    assert len(keeper.seen) == BATCHES and keeper.reused() > 0


@pytest.mark.parametrize("workers,prefetch", [(1, 1), (1, 4), (2, 1), (2, 4)])
def test_every_batch_kept_at_any_prefetch_depth(data, reference, workers, prefetch):
    keeper = Keeper()
    for i, batch in enumerate(with_prefetch(make_loader(make_config(data, num_workers=workers)), prefetch)):
        keeper.take(batch, reference[0][i], where=f"batch {i}")
    keeper.check()
    assert len(keeper.seen) == BATCHES and keeper.reused() == 0
    dropped = Keeper()  # the same loader shape over 3 epochs, each batch dropped: segments come back
    loader = with_prefetch(make_loader(make_config(data, num_workers=workers)), prefetch)
    for epoch in range(3):
        for i, batch in enumerate(loader):
            dropped.take(batch, reference[epoch][i], keep=False, where=f"epoch {epoch} batch {i}")
            del batch
    if prefetch == 1:  # prefetch_factor >= slots: a worker is usually 4 batches ahead, fresh segments
        assert dropped.reused() > 0


def test_persistent_workers_across_epochs(data, reference):
    loader = make_loader(make_config(data, persistent_workers=True))
    keeper = Keeper("view")
    for epoch in range(3):
        for i, batch in enumerate(loader):  # epochs 0 and 2: every third batch kept, epoch 1 dropped
            keep = epoch != 1 and i % 3 == 0
            keeper.take(batch, reference[epoch][i], keep=keep, where=f"epoch {epoch} batch {i}")
            del batch
        keeper.check()
    assert keeper.reused() > 0


def test_two_loaders_at_once(data, reference):
    other = make_config(data, seed=7)
    other_reference = [clone(b) for b in make_loader(dataclasses.replace(other, num_workers=0))]
    a, b = Keeper(), Keeper("slice")
    for i, (x, y) in enumerate(zip(make_loader(make_config(data)), make_loader(other), strict=True)):
        a.take(x, reference[0][i], keep=i % 3 != 1, where=f"loader a batch {i}")
        b.take(y, other_reference[i], keep=i % 2 == 1, where=f"loader b batch {i}")
        del x, y
    a.check()
    b.check()
    assert a.reused() + b.reused() > 0


def test_one_loader_iterated_twice_at_once(data):
    loader = make_loader(make_config(data, samples_per_epoch=8 * 40))
    first, second = Keeper(), Keeper("view")
    for i, (x, y) in enumerate(zip(iter(loader), iter(loader), strict=False)):
        first.take(x, None, where=f"first iteration batch {i}")
        second.take(y, None, keep=i % 2 == 0, where=f"second iteration {i}")
        del x, y
    first.check()
    second.check()
    assert len(first.seen) >= 10


@pytest.mark.parametrize("persistent", [False, True])
def test_breaking_out_early_and_starting_again(data, reference, persistent):
    loader = make_loader(make_config(data, persistent_workers=persistent))
    keeper = Keeper("numpy")

    def expected():
        return reference[loader.state.epoch][loader.state.batch - 1]

    for _ in range(4):  # 2 batches, break (the prefetched ones are dropped unseen), again
        for i, batch in enumerate(loader):
            keeper.take(batch, expected(), where=f"epoch {loader.state.epoch} batch {loader.state.batch - 1}")
            if i == 1:
                break
    del batch
    keeper.check()
    rest = Keeper()  # the rest of this epoch and two more, each batch dropped
    for _ in range(3):
        for batch in loader:
            rest.take(batch, expected(), keep=False, where=f"batch {loader.state.batch - 1}")
            del batch
    assert len(rest.seen) == 22
    if not persistent:  # new workers take over the slots of reaped ones whose batches never arrived
        assert rest.reused() > 0
    # persistent workers: torch drains the prefetched batches unseen at the next epoch, so their
    # slots stay busy (no release was ever attached): reuse stops, data stays right (known, not fixed)


def test_resume_with_load_state_dict(data, reference):
    loader = make_loader(make_config(data))
    for i, _ in enumerate(loader):
        if i == 0:
            break
    state = loader.state_dict()
    resumed = make_loader(make_config(data, persistent_workers=True))
    resumed.load_state_dict(state)
    keeper = Keeper("moved")
    for i, batch in enumerate(resumed, start=state["batch"]):
        keeper.take(batch, reference[0][i], keep=i % 3 == 0, where=f"resumed batch {i}")
        del batch
    keeper.check()
    assert len(keeper.seen) == BATCHES - state["batch"] and keeper.reused() > 0


def test_pin_memory_takes_a_fresh_segment_per_batch(data, reference):
    keeper = Keeper("view")
    with warnings.catch_warnings():  # without an accelerator torch warns and does not pin
        warnings.filterwarnings("ignore", "'pin_memory' argument is set as true but no accelerator")
        for i, batch in enumerate(make_loader(make_config(data, pin_memory=True))):
            keeper.take(batch, reference[0][i], keep=i % 2 == 0, where=f"batch {i}")
            del batch
    keeper.check()
    assert not any(magic for _, magic in keeper.seen)


def test_dataloader_iterated_directly_never_reuses(data, reference):
    loader = make_loader(make_config(data, persistent_workers=True))
    for _ in range(2):  # the second pass runs on the same workers
        keeper = Keeper()
        seen = []
        for i, batch in enumerate(loader.dataloader):
            keeper.take(batch, reference[0][i], keep=i % 2 == 0, where=f"batch {i}")
            seen.append(segment(batch)[0])
            del batch
        keeper.check()
        assert keeper.reused() == 0
    through_loader = Keeper("view")
    for i, batch in enumerate(loader):  # the loader's own iteration on the same workers
        through_loader.take(batch, reference[0][i], keep=i % 3 == 0, where=f"batch {i}")
        del batch
    through_loader.check()  # (direct batches are never released: these workers' slots stay busy)


def test_main_process_buffer_pool_never_overwrites_what_is_kept(data, reference):
    for what in ("batch", "view", "numpy slice", "moved"):
        keeper = Keeper(what)
        addresses = []
        for i, batch in enumerate(make_loader(make_config(data, num_workers=0))):
            keeper.take(batch, reference[0][i], keep=i % 2 == 0, where=f"batch {i}")
            addresses.append(batch["tokens"].untyped_storage().data_ptr())
            del batch
        keeper.check()
        kept = {addresses[i] for i in range(0, BATCHES, 2)}
        assert len(kept) == BATCHES // 2  # kept batches: all distinct buffers
        assert not kept & set(addresses[1::2])  # dropped ones never in a kept buffer
        assert len(set(addresses[1::2])) < BATCHES // 2  # and reused among themselves
        del keeper
        gc.collect()


SCRIPT = """
import gc, os, sys, torch
torch.multiprocessing.set_sharing_strategy(sys.argv[2])
sys.path.insert(0, os.path.dirname(sys.argv[3]))
from test_loader_segments import BATCHES, clone, assert_equal, make_config, segment
from pathlib import Path
from vla_data.loader import make_loader

def mapped():
    with open("/proc/self/maps") as maps:
        return sum("/torch_" in line for line in maps)

data = Path(sys.argv[1])
loader = make_loader(make_config(data, persistent_workers=True))
kept = []
for epoch in range(2):
    for i, batch in enumerate(loader):
        if i % 3 == 0:
            kept.append((batch["images"]["base_0_rgb"][1:], clone(batch["images"]["base_0_rgb"][1:])))
    # between epochs the workers wait; the last batch is freed now, the next epoch reuses it
    del batch
    gc.collect()
for piece, copy in kept:
    assert_equal(piece, copy)
del loader  # workers shut down while batches are still held
gc.collect()
for piece, copy in kept:
    assert_equal(piece, copy)
at_exit = kept[: len(kept) // 2]  # these live until the interpreter exits
del kept, piece, copy
gc.collect()
print("mapped", mapped(), len(at_exit))
"""


@pytest.mark.parametrize("strategy", ["file_descriptor", "file_system"])
def test_finalizers_after_the_loader_and_its_workers_are_gone(data, strategy):
    before = {n for n in os.listdir("/dev/shm") if n.startswith("torch_")}
    here = os.path.abspath(__file__)
    run = subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore::UserWarning",
            "-c",
            textwrap.dedent(SCRIPT),
            str(data),
            strategy,
            here,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and run.stderr == "", run.stderr
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    mapped, at_exit = map(int, lines["mapped"].split())
    assert 0 < mapped <= at_exit + 1  # the segments of pieces still held, and the flag table
    after = {n for n in os.listdir("/dev/shm") if n.startswith("torch_")}
    assert not (after - before), "shared-memory files left behind after the process exited"
