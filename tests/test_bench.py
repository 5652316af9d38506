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
