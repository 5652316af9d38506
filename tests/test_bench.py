"""The benchmark commands run and report the fields the README quotes (speed is never asserted)."""

import json

from click.testing import CliRunner

from vla_data.cli import main


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_bench_tokenizer_small(shared_data):
    result = json.loads(
        run(
            "bench",
            "tokenizer",
            "--chunks",
            "50",
            "--fit-chunks",
            "300",
            "--repeats",
            "1",
            "--fast-plus",
            shared_data / "fast_plus",
            "--json",
        )
    )
    assert [(r["tokenizer"], r["shape"]) for r in result["rows"]] == [
        (name, shape) for shape in ("10x7", "30x26", "50x14") for name in ("fitted default", "FAST+")
    ]
    for row in result["rows"]:
        assert row["encode_batched_per_s"] > 0 and row["encode_vs_plain_bpe"] > 0
    assert result["fit"]["chunks"] == 300


def test_bench_compare_modes_on_golden_sets(shared_data):
    rows = json.loads(run("bench", "tokenizer", "--compare-modes", shared_data / "fast_golden", "--json"))
    assert {r["set"] for r in rows} == {"g1_humanoid", "lingzu_dual_arm", "so101", "synthetic_10x7"}
    assert all(r["identical_reconstruction"] and r["default"] < r["compat"] for r in rows)


def test_bench_convert_small(tmp_path):
    result = json.loads(
        run(
            "bench",
            "convert",
            "--frames",
            "200",
            "--episode-length",
            "100",
            "--workers",
            "1",
            "--dir",
            tmp_path,
            "--json",
        )
    )
    assert result["frames"] == 200 and result["convert"]["stream --workers 1"]["frames_per_s"] > 0
    assert result["convert"]["stream --workers 1"]["peak_rss_main_mb"] > 0


def test_loader_worker_rss_is_measured_as_one_pass_touches_more_data(tmp_path):
    from vla_data.bench.loader import worker_rss_over_data

    result = worker_rss_over_data(tmp_path, batch_size=4, horizon=5, rss_batches=100)
    assert result["dataset_steps"] == 400  # exactly the batches drawn: the last point has seen every step
    assert [p["steps_touched"] for p in result["points"]] == [0.01, 0.1, 0.5, 1.0]
    for point in result["points"]:
        assert len(point["workers"]) == 2 and all(0 < w["anon"] <= w["rss"] for w in point["workers"])


def test_bench_images_reports_every_decoder_against_pil():
    result = json.loads(run("bench", "images", "--frames", "4", "--repeats", "1", "--json"))
    by_name = {(r["stored"], r["decoder"]): r for r in result["rows"]}
    assert by_name[("224x224", "PIL full (reference)")]["max_abs_diff"] == 0
    assert by_name[("480x640", "PIL draft (DCT-scaled)")]["max_abs_diff"] > 0  # draft is not the reference
    assert by_name[("480x640", "vla_data decode_for_size")]["max_abs_diff"] == 0  # full decode by default
    names = {r["decoder"] for r in result["rows"]} | set(result["skipped"])
    assert {"simplejpeg", "PyTurboJPEG", "torchvision.io.decode_jpeg"} <= names


def test_bench_scale_tiny_runs_every_stage_and_the_loader_check(tmp_path):
    from vla_data.bench.scale import STAGES

    result = json.loads(
        run(
            "bench",
            "scale",
            "--sizes",
            "1,2",
            "--base",
            "0.005",
            "--loader-batches",
            "3",
            "--loader-steps",
            "1000",
            "--dir",
            tmp_path,
            "--json",
        )
    )
    assert list(result["stages"]) == list(STAGES)
    for stage, row in result["stages"].items():
        small, large = row["runs"]["1"], row["runs"]["2"]
        assert small["ms_per_item"] > 0 and small["peak_rss_mb"] > 0, stage
        if stage != "loader":
            assert large["items"] > small["items"], stage  # the data doubled
        assert 0 < small["cpu_ms_per_item"] and row["cpu_time_ratio"] > 0, stage
        assert row["time_ratio"] == large["ms_per_item"] / small["ms_per_item"]
    check = result["loader_check"]
    assert check["steps"] == 1000 and check["build_and_first_batch_s"] > 0 and check["main_rss_mb"] > 0
    loader = result["stages"]["loader"]["runs"]["1"]
    assert loader["page_releases"] >= 0
    from vla_data.bench.scale import format_scale_table

    assert "loader CPU ms per batch" in format_scale_table(result)


def test_bench_loader_bound_decodes_the_loaders_frames_into_batch_rows(demo_hdf5, tmp_path):
    """The bound's work: the same frames the loader decodes for those steps, into batch rows."""
    import numpy as np

    from vla_data.bench.loader import decode_into_batches, stored_frames
    from vla_data.convert import convert
    from vla_data.loader import LoaderConfig, SourceConfig, make_loader
    from vla_data.sources.hdf5 import HDF5Source
    from vla_data.tokenizers import FastTokenizer
    from vla_data.tokenizers.chunks import ChunkSpec, sample_chunks

    convert(HDF5Source.from_paths(demo_hdf5, layout="aloha", task="wave"), tmp_path / "robot")
    chunks = sample_chunks([tmp_path / "robot"], ChunkSpec(horizon=5))
    FastTokenizer.fit(chunks.values, vocab_size=300).save_pretrained(tmp_path / "fast")
    config = LoaderConfig(
        sources=(SourceConfig("robot", (str(tmp_path / "robot"),)),),
        fast_tokenizer=str(tmp_path / "fast"),
        fast_mapping="append",
        batch_size=4,
        horizon=5,
        action_dim=16,
        image_size=(48, 64),  # as stored
    )
    loader = make_loader(config)
    robot, dataset = loader.sources[0], loader.dataloader.dataset
    steps = np.array([3, 50, 7, 119, 0, 64, 65])  # a full batch, then 3 rows of the next
    frames = stored_frames(robot, steps)
    assert sorted(frames) == ["base_0_rgb", "left_wrist_0_rgb"]  # the third slot has no camera
    batches = decode_into_batches(loader.dataloader.collate_fn, frames, 4, draft=False)()
    for i, step in enumerate(steps.tolist()):
        sample = dataset[(0, step)]
        for slot in frames:
            got = batches[i // 4][slot][i % 4]
            np.testing.assert_array_equal(got, sample["images"][slot].transpose(1, 2, 0))

    from vla_data.bench.loader_profile import STAGES, format_profile, profile_loader

    profile = profile_loader(make_loader(config), 3)  # its bound: the batches' frames into their rows
    assert profile["samples"] == 12 and list(profile["us_per_sample"]) == list(STAGES)
    assert 0 < profile["bound_us"] and profile["us_per_sample"]["image decode"] > 0
    assert "decode+resize bound" in format_profile(profile)
