"""Conversion work per item does not grow with the dataset: counted (rows, bytes, comparisons,
pickles, journal bytes), never timed."""

import io
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from vla_data.convert import ConvertOptions, convert, infer_features
from vla_data.episode import Episode
from vla_data.errors import SourceError
from vla_data.samples import write_aloha_sample, write_lerobot_v30_sample, write_rlds_sample
from vla_data.shards import ShardDataset, verify_dataset
from vla_data.shards.manifest import MANIFEST_FILE, PROGRESS_FILE
from vla_data.shards.merge import PLACED, merge_datasets
from vla_data.shards.writer import ShardWriter, TaskIndex
from vla_data.sources.hdf5 import HDF5Source
from vla_data.sources.lerobot import LeRobotSource
from vla_data.sources.parquet_rows import COUNTS
from vla_data.sources.rlds import RLDSSource
from vla_data.sources.tfrecord import GZIP_COUNTS

from .test_scale import DiesAt, assert_same_content


@pytest.fixture(scope="module")
def aloha(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aloha")
    write_aloha_sample(folder, episodes=12, steps=6, height=8, width=8)
    return folder


# -- task index ------------------------------------------------------------------------------------
class CountingStr(str):
    comparisons = 0

    def __eq__(self, other):
        CountingStr.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_task_index_at_40k_distinct_tasks_compares_a_constant_number_of_times_per_task():
    tasks = [CountingStr(f"pick object {i}") for i in range(40_000)]
    CountingStr.comparisons = 0
    index = TaskIndex()
    assert [index.index(t) for t in tasks] == list(range(40_000))
    assert [index.index(t) for t in tasks[::-1]] == list(range(40_000))[::-1]  # found again, not re-added
    # a list scan would compare each task with every earlier one (~8e8 comparisons)
    assert CountingStr.comparisons <= 2 * 2 * len(tasks)
    assert len(index) == 40_000 and index.tasks[123] == "pick object 123"


# -- append-only journal ---------------------------------------------------------------------------
def small_episode(i: int) -> Episode:
    rng = np.random.default_rng(i)
    return Episode(
        index=i,
        task=f"task {i % 7}",
        fps=10.0,
        arrays={"action": rng.normal(size=(5, 3)), "observation.state": rng.normal(size=(5, 2))},
        source_ref={"file": "generated", "episode": i},
    )


def write_episodes(out: Path, count: int, *, resume: bool = False, finish: bool = True, sizes=None):
    writer = ShardWriter(out, source={"format": "test"}, target_bytes=1, resume=resume)  # a shard per episode
    for i in range(count):
        episode = small_episode(i)
        if writer.features is None:
            writer.set_features(episode.fps, infer_features(episode))
        writer.write(episode, position=i)
        if sizes is not None:
            sizes.append((out / PROGRESS_FILE).stat().st_size)
    if finish:
        writer.finish()
    else:
        writer.abandon()
    return writer


def test_journal_grows_linearly_with_episodes(tmp_path):
    sizes: list[int] = []
    write_episodes(tmp_path / "out", 60, finish=False, sizes=sizes)
    growth = np.diff(sizes)  # bytes appended per closed shard (one episode each)
    early, late = growth[5:15].mean(), growth[-10:].mean()
    assert late <= 1.2 * early, (early, late)  # rewriting every row at each close would grow it ~10x
    lines = (tmp_path / "out" / PROGRESS_FILE).read_text().splitlines()
    assert len(lines) == 61 and "source" in json.loads(lines[0])


def test_torn_journal_line_is_dropped_and_resume_is_byte_identical(tmp_path):
    write_episodes(tmp_path / "reference", 20)
    out = tmp_path / "out"
    write_episodes(out, 12, finish=False)
    with open(out / PROGRESS_FILE, "a") as f:
        f.write('{"consumed": 13, "shards": [{"file": "shards/shard-000')  # killed mid-append
    write_episodes(out, 20, resume=True)
    for name in ["episodes.arrow", *(f"shards/shard-{i:05d}.arrow" for i in range(20))]:
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
    reference = json.loads((tmp_path / "reference" / MANIFEST_FILE).read_text())
    assert json.loads((out / MANIFEST_FILE).read_text()) == reference
    assert reference["tasks"] == [f"task {i}" for i in range(7)]
    assert not (out / PROGRESS_FILE).exists()


# -- workers get episode references, not the source ----------------------------------------------
PICKLES = {"source": 0}


@dataclass(frozen=True)
class CountedSource(HDF5Source):
    """Counts how often it is pickled (in this, the parent process)."""

    def __getstate__(self):
        PICKLES["source"] += 1
        return dict(self.__dict__)


def test_stream_workers_receive_the_source_once_each_not_per_episode(aloha, tmp_path):
    paths = HDF5Source.from_paths(aloha, layout="aloha").paths
    # a long file list makes the source heavy; episodes must not carry it
    source = CountedSource(paths=paths, layout="aloha")
    PICKLES["source"] = 0
    convert(source, tmp_path / "two", ConvertOptions(workers=2))
    assert PICKLES["source"] <= 2 < len(paths)
    convert(HDF5Source(paths=paths, layout="aloha"), tmp_path / "one")
    assert (tmp_path / "two" / "episodes.arrow").read_bytes() == (
        tmp_path / "one" / "episodes.arrow"
    ).read_bytes()


# -- units fail fast -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FailsFirstUnit(HDF5Source):
    """Unit 0 fails at once; every unit records that it started in `log`."""

    log: str = ""

    def read(self, ref):
        with open(self.log, "a") as f:
            f.write(ref["file"] + "\n")
        if ref["file"].endswith("episode_0.hdf5"):
            raise SourceError("simulated bad episode", file=ref["file"], episode=0)
        return super().read(ref)


def test_a_failing_unit_cancels_queued_units_and_raises(aloha, tmp_path):
    paths = HDF5Source.from_paths(aloha, layout="aloha").paths
    log = tmp_path / "started.log"
    source = FailsFirstUnit(paths=paths, layout="aloha", log=str(log))
    workers = 2
    with pytest.raises(SourceError, match="simulated bad episode"):
        convert(source, tmp_path / "out", ConvertOptions(executor="local", workers=workers, unit_episodes=1))
    started = log.read_text().splitlines()
    # at most the units running or already handed to a worker (one extra per worker) start
    assert 1 <= len(started) <= 2 * workers + 1 < len(paths), started
    assert not (tmp_path / "out" / MANIFEST_FILE).exists()


# -- LeRobot v3.0: an episode reads its own rows -----------------------------------------------
@pytest.mark.parametrize("row_group_rows", [None, 1_000_000], ids=["group-per-episode", "one-group-per-file"])
def test_lerobot_v30_rows_decoded_per_episode_do_not_grow_with_the_file(tmp_path, row_group_rows):
    episodes, steps = 32, 20
    decoded, opens = {}, {}
    for per_file in (4, 32):  # 1x and 8x episodes per data file
        root = write_lerobot_v30_sample(
            tmp_path / f"src{per_file}",
            episodes=episodes,
            steps=steps,
            episodes_per_file=per_file,
            row_group_rows=row_group_rows,
        )
        before = dict(COUNTS)
        convert(LeRobotSource.from_path(root), tmp_path / f"out{per_file}")
        decoded[per_file] = (COUNTS["rows"] - before["rows"]) / episodes
        opens[per_file] = COUNTS["opens"] - before["opens"]
        dataset = ShardDataset(tmp_path / f"out{per_file}")
        for e in (0, 13, episodes - 1):
            np.testing.assert_array_equal(
                dataset.episode(e)["action"][:, 0], np.float32(e + np.arange(steps) / 1000)
            )
    assert decoded[4] == decoded[32] == steps  # filtering the whole file would decode 8x more at 32 per file
    assert opens == {4: episodes // 4, 32: 1}  # each file's footer parsed once, not once per episode


def test_lerobot_v30_row_range_that_misses_the_episode_is_named(tmp_path):
    import pyarrow.parquet as pq

    root = write_lerobot_v30_sample(tmp_path / "src", episodes=4, steps=5, episodes_per_file=4)
    table_path = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    rows = pq.read_table(table_path).to_pylist()
    rows[2]["dataset_from_index"], rows[2]["dataset_to_index"] = 15, 20  # episode 3's rows
    pq.write_table(pa.Table.from_pylist(rows), table_path)
    with pytest.raises(SourceError, match=r"episode 2, .*rows 15..20 .* hold episodes \[3\]"):
        convert(LeRobotSource.from_path(root), tmp_path / "out")


# -- GZIP TFRecords: one sequential pass ----------------------------------------------------------
def test_gzip_tfrecord_bytes_read_per_episode_do_not_grow_with_the_file(tmp_path):
    per_episode, files = {}, {}
    for episodes in (8, 64):  # 1x and 8x episodes in one GZIP file
        folder = tmp_path / f"rlds{episodes}"
        write_rlds_sample(folder, episodes=episodes, steps=20, image_size=(32, 32), shards=1, compress=True)
        (path,) = folder.glob("*.tfrecord-*")
        assert path.read_bytes()[:2] == b"\x1f\x8b"
        source = RLDSSource.from_path(folder)
        before = dict(GZIP_COUNTS)
        convert(source, tmp_path / f"out{episodes}")
        read = GZIP_COUNTS["compressed_bytes"] - before["compressed_bytes"]
        assert GZIP_COUNTS["opens"] - before["opens"] == 1  # one stream for the whole file
        # one pass over the file; the last read-ahead block may go past what the last episode needs
        assert read <= path.stat().st_size + 2 * io.DEFAULT_BUFFER_SIZE * 16
        per_episode[episodes], files[episodes] = read / episodes, path.stat().st_size
    assert files[64] > 6 * files[8]
    assert per_episode[64] <= 1.2 * per_episode[8]  # from byte 0 per episode would be ~4x at 8x


# -- HDF5: camera frames in bounded blocks ---------------------------------------------------------
def test_hdf5_camera_frames_are_read_in_bounded_blocks(tmp_path):
    import tracemalloc

    from vla_data.convert import prepare_episode

    write_aloha_sample(tmp_path / "src", episodes=1, steps=240, height=96, width=128)
    camera_bytes = 240 * 96 * 128 * 3  # 8.8 MB per camera
    block = camera_bytes // 24
    paths = HDF5Source.from_paths(tmp_path / "src", layout="aloha").paths
    bounded = HDF5Source(paths=paths, layout="aloha", frame_block_bytes=block)
    (ref,) = bounded.episode_refs()
    tracemalloc.start()
    try:
        episode = prepare_episode(bounded.read(ref), ConvertOptions())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(episode.images) == 2 and all(len(frames) == 240 for frames in episode.images.values())
    encoded = sum(len(b) for frames in episode.images.values() for b in frames)  # the output itself
    assert peak - encoded < camera_bytes / 4, (peak, encoded)  # whole arrays: 2 x 8.8 MB in flight
    # the block size changes memory only, never the output
    convert(bounded, tmp_path / "blocks")
    convert(HDF5Source(paths=paths, layout="aloha"), tmp_path / "whole")
    for name in ("episodes.arrow", "shards/shard-00000.arrow"):
        assert (tmp_path / "blocks" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


# -- merge keeps unit shards ----------------------------------------------------------------------
def placed_since(before):
    return {k: PLACED[k] - before[k] for k in PLACED}


def test_units_merge_links_unit_shards_without_rewriting_or_rehashing(aloha, tmp_path):
    source = HDF5Source.from_paths(aloha, layout="aloha", task="fold")
    before = dict(PLACED)
    manifest = convert(source, tmp_path / "units", ConvertOptions(executor="local", unit_episodes=5))
    assert placed_since(before) == {"kept": 3, "patched": 0, "rewritten": 0, "hashed_bytes": 0}
    assert len(manifest.shards) == 3 and verify_dataset(tmp_path / "units") == []
    convert(source, tmp_path / "stream", ConvertOptions())
    assert_same_content(tmp_path / "units", tmp_path / "stream")


def test_units_after_a_skipped_episode_patch_only_the_index_columns(aloha, tmp_path):
    paths = HDF5Source.from_paths(aloha, layout="aloha").paths
    source = FailsFirstUnit(paths=paths, layout="aloha", log=str(tmp_path / "log"))
    before = dict(PLACED)
    convert(source, tmp_path / "units", ConvertOptions(executor="local", unit_episodes=5, on_error="skip"))
    placed = placed_since(before)
    assert placed["kept"] == 1 and placed["patched"] == 2 and placed["rewritten"] == 0  # units 1, 2 move up
    assert (
        0 < placed["hashed_bytes"] < sum(p.stat().st_size for p in (tmp_path / "units" / "shards").iterdir())
    )
    assert verify_dataset(tmp_path / "units") == []
    convert(source, tmp_path / "stream", ConvertOptions(on_error="skip"))
    assert_same_content(tmp_path / "units", tmp_path / "stream")
    assert ShardDataset(tmp_path / "units").num_episodes == len(paths) - 1


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_merge_copies_inputs_and_renumbers_tasks(aloha, tmp_path, compression):
    paths = HDF5Source.from_paths(aloha, layout="aloha").paths
    options = ConvertOptions(compression=compression)
    convert(HDF5Source(paths=paths[:4], layout="aloha", task="a"), tmp_path / "a", options)
    convert(HDF5Source(paths=paths[4:], layout="aloha", task="b"), tmp_path / "b", options)
    inputs = {p: p.read_bytes() for p in sorted((tmp_path).glob("[ab]/shards/*.arrow"))}
    before = dict(PLACED)
    merged = merge_datasets([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")
    placed = placed_since(before)
    assert placed["kept"] == 1 and placed["patched" if compression is None else "rewritten"] == 1
    assert {p: p.read_bytes() for p in inputs} == inputs  # inputs untouched
    assert merged.tasks == ["a", "b"] and verify_dataset(tmp_path / "merged") == []
    dataset = ShardDataset(tmp_path / "merged")
    assert [dataset.task(e) for e in (0, 3, 4, len(paths) - 1)] == ["a", "a", "b", "b"]
    np.testing.assert_array_equal(dataset.episode(5)["episode_index"], 5)
    np.testing.assert_array_equal(dataset.episode(5)["task_index"], 1)
    np.testing.assert_array_equal(
        dataset.episode(5)["action"], ShardDataset(tmp_path / "b").episode(1)["action"]
    )


def test_units_resume_after_a_merge_that_died(aloha, tmp_path):
    paths = HDF5Source.from_paths(aloha, layout="aloha").paths
    options = ConvertOptions(executor="local", unit_episodes=5)
    convert(HDF5Source(paths=paths, layout="aloha"), tmp_path / "reference", options)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):  # units 0 and 1 finished ...
        convert(DiesAt(paths=paths, layout="aloha", dies_at=Path(paths[-1]).name), out, options)
    (out / "shards").mkdir(exist_ok=True)
    (out / "shards" / "shard-00000.arrow").write_bytes(b"half")  # ... and a merge died (as if)
    (out / "episodes.arrow.tmp").write_bytes(b"half")
    convert(HDF5Source(paths=paths, layout="aloha"), out, replace(options, resume=True))
    assert json.loads((out / MANIFEST_FILE).read_text()) == json.loads(
        (tmp_path / "reference" / MANIFEST_FILE).read_text()
    )
    assert (out / "episodes.arrow").read_bytes() == (tmp_path / "reference" / "episodes.arrow").read_bytes()
    assert not (out / "episodes.arrow.tmp").exists() and verify_dataset(out) == []
