"""Web sources on files written by the real tools: LLaVA JSON + image folder, `datasets`
save_to_disk / to_parquet (LLaVA-OneVision and the_cauldron schemas), `webdataset.TarWriter`
tars, COCO instances, RefCOCO-style records; per-sample skip; flat memory."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from vla_data.cli import main
from vla_data.convert import ConvertOptions, convert
from vla_data.errors import SourceError
from vla_data.images import encode_image
from vla_data.shards import ShardDataset, verify_dataset
from vla_data.sources.web import WebSource, detect_format
from vla_data.sources.web_sample import read_web_sample


def jpeg(value: int, height: int = 24, width: int = 32) -> bytes:
    return encode_image(np.full((height, width, 3), value, np.uint8), "jpeg")


def samples(root) -> list:
    ds = ShardDataset(root)
    assert verify_dataset(root) == []
    return [read_web_sample(ds, i) for i in range(len(ds))]


def run_cli(*args):
    from click.testing import CliRunner

    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


LLAVA = [
    {
        "id": "two-turn",
        "image": "coco/000000123.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is on the table?"},
            {"from": "gpt", "value": "A red cup."},
            {"from": "human", "value": "Is it full?"},
            {"from": "gpt", "value": "No, it is empty."},
        ],
    },
    {
        "id": "text-only",
        "conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi!"}],
    },
    {
        "id": "two-images",
        "image": ["coco/a.jpg", "coco/b.png"],
        "conversations": [
            {"from": "human", "value": "<image>\n<image>\nSame colour?"},
            {"from": "gpt", "value": "No."},
        ],
    },
]


def write_llava(folder: Path) -> dict[str, bytes]:
    (folder / "coco").mkdir(parents=True)
    files = {
        "coco/000000123.jpg": jpeg(10),
        "coco/a.jpg": jpeg(200, 30, 20),
        "coco/b.png": encode_image(np.full((8, 16, 3), 7, np.uint8), "png"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "llava.json").write_text(json.dumps(LLAVA, indent=1))
    return files


def test_llava_json_with_image_folder(tmp_path):
    files = write_llava(tmp_path / "raw")
    assert detect_format(tmp_path / "raw" / "llava.json") == "llava"
    run_cli("convert", "web", tmp_path / "raw" / "llava.json", tmp_path / "out", "--group-size", "2")
    got = {s.id: s for s in samples(tmp_path / "out")}
    two = got["two-turn"]
    assert two.kind == "chat" and two.turns == [
        ("user", "What is on the table?"),
        ("assistant", "A red cup."),
        ("user", "Is it full?"),
        ("assistant", "No, it is empty."),
    ]
    assert two.images == [files["coco/000000123.jpg"]] and two.image_sizes == [(24, 32)]  # bytes copied
    assert got["text-only"].images == [] and got["text-only"].turns[0] == ("user", "Say hi.")
    assert got["two-images"].images == [files["coco/a.jpg"], files["coco/b.png"]]
    assert got["two-images"].image_sizes == [(30, 20), (8, 16)]
    assert ShardDataset(tmp_path / "out").num_episodes == 2  # groups of 2 samples


def test_llava_jsonl_and_sample_errors_name_the_sample(tmp_path):
    write_llava(tmp_path)
    bad = {"id": "bad", "image": "coco/missing.jpg", "conversations": LLAVA[1]["conversations"]}
    lines = [json.dumps(r) for r in [*LLAVA, bad]] + ["{not json"]
    (tmp_path / "chat.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError, match=r"sample bad: image file .*missing.jpg is missing"):
        convert(WebSource(str(tmp_path / "chat.jsonl")), tmp_path / "fail")
    manifest = convert(
        WebSource(str(tmp_path / "chat.jsonl")), tmp_path / "out", ConvertOptions(on_error="skip")
    )
    assert [s.id for s in samples(tmp_path / "out")] == ["two-turn", "text-only", "two-images"]
    (bad_image, bad_line) = manifest.skipped
    assert bad_image["source_ref"] == {"file": str(tmp_path / "chat.jsonl"), "sample": "bad"}
    assert "missing.jpg is missing" in bad_image["reason"]
    assert bad_line["source_ref"]["sample"] == "line 5" and "is not JSON" in bad_line["reason"]


def hf_images():
    return [jpeg(30), jpeg(60, 20, 40), jpeg(90, 16, 16)]


def onevision_dataset():
    import datasets

    images = hf_images()
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "conversations": [{"from": datasets.Value("string"), "value": datasets.Value("string")}],
        }
    )
    rows = {
        "id": ["ov-0", "ov-1", "ov-2"],
        "image": [{"bytes": b, "path": None} for b in images[:2]] + [None],
        "conversations": [
            [{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "Grey."}],
            [
                {"from": "human", "value": "<image>\nCount?"},
                {"from": "gpt", "value": "One."},
                {"from": "human", "value": "Colour?"},
                {"from": "gpt", "value": "Dark."},
            ],
            [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}],
        ],
    }
    return datasets.Dataset.from_dict(rows, features=features), images


def cauldron_dataset():
    import datasets

    images = hf_images()
    features = datasets.Features(
        {
            "images": datasets.Sequence(datasets.Image()),
            "texts": [
                {
                    "user": datasets.Value("string"),
                    "assistant": datasets.Value("string"),
                    "source": datasets.Value("string"),
                }
            ],
        }
    )
    rows = {
        "images": [
            [{"bytes": images[0], "path": None}, {"bytes": images[1], "path": None}],
            [{"bytes": images[2], "path": None}],
        ],
        "texts": [
            [{"user": "Which is brighter?", "assistant": "The second.", "source": "x"}],
            [
                {"user": "Q1?", "assistant": "A1.", "source": "x"},
                {"user": "Q2?", "assistant": "A2.", "source": "x"},
            ],
        ],
    }
    return datasets.Dataset.from_dict(rows, features=features), images


@pytest.mark.parametrize("writer", ["save_to_disk", "to_parquet"])
def test_hf_onevision_and_cauldron_schemas(tmp_path, writer):
    for name, make in (("onevision", onevision_dataset), ("cauldron", cauldron_dataset)):
        dataset, images = make()
        src = tmp_path / name
        if writer == "save_to_disk":
            dataset.save_to_disk(str(src))
        else:
            src.mkdir()
            dataset.to_parquet(str(src / "train-00000-of-00001.parquet"))
        assert detect_format(src) == "hf"
        run_cli("convert", "web", src, tmp_path / f"{name}_out", "--group-size", "2")
        got = samples(tmp_path / f"{name}_out")
        if name == "onevision":
            assert [s.id for s in got] == ["ov-0", "ov-1", "ov-2"]
            assert got[1].turns == [
                ("user", "Count?"),
                ("assistant", "One."),
                ("user", "Colour?"),
                ("assistant", "Dark."),
            ]
            assert got[0].images == [images[0]] and got[1].images == [images[1]] and got[2].images == []
        else:
            assert got[0].turns == [("user", "Which is brighter?"), ("assistant", "The second.")]
            assert got[0].images == images[:2] and got[0].image_sizes == [(24, 32), (20, 40)]
            assert got[1].turns == [
                ("user", "Q1?"),
                ("assistant", "A1."),
                ("user", "Q2?"),
                ("assistant", "A2."),
            ]
            assert got[1].images == [images[2]] and {s.kind for s in got} == {"chat"}


def test_webdataset_tars_written_by_tarwriter(tmp_path):
    import webdataset

    (tmp_path / "shards").mkdir()
    expected = {}
    for shard in range(2):
        with webdataset.TarWriter(str(tmp_path / "shards" / f"{shard:05d}.tar")) as sink:
            for i in range(5):
                key = f"{shard:05d}{i:04d}"
                image = jpeg(20 * i + shard)
                caption = f"picture {shard}-{i}"
                record = {"__key__": key, "jpg": image, "json": {"caption": caption, "width": 32}}
                if i != 3:  # img2dataset writes .txt; one sample carries its caption in .json only
                    record["txt"] = caption
                sink.write(record)
                expected[key] = (image, caption)
    assert detect_format(tmp_path / "shards") == "wds"
    run_cli("convert", "web", tmp_path / "shards", tmp_path / "out", "--group-size", "3")
    got = samples(tmp_path / "out")
    assert len(got) == 10 and ShardDataset(tmp_path / "out").num_episodes == 4
    for sample in got:
        image, caption = expected[sample.id]
        assert sample.images == [image] and sample.turns == [("user", ""), ("assistant", caption)]
        assert sample.kind == "caption"


def test_coco_instances(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    for name, (h, w) in {"1.jpg": (40, 60), "2.jpg": (30, 30), "3.jpg": (20, 20)}.items():
        (tmp_path / "val2017" / name).write_bytes(jpeg(100, h, w))
    coco = {
        "info": {"year": 2017},
        "images": [
            {"id": 11, "file_name": "1.jpg", "height": 40, "width": 60},
            {"id": 12, "file_name": "2.jpg", "height": 30, "width": 30},
            {"id": 13, "file_name": "3.jpg", "height": 20, "width": 20},  # no annotation: no sample
        ],
        "annotations": [
            {"id": 1, "image_id": 11, "bbox": [10, 5, 20, 10], "category_id": 1, "iscrowd": 0},
            {"id": 2, "image_id": 12, "bbox": [0, 0, 30, 30], "category_id": 2, "iscrowd": 0},
            {"id": 3, "image_id": 11, "bbox": [30, 20, 25.5, 15], "category_id": 2, "iscrowd": 0},
            {
                "id": 4,
                "image_id": 11,
                "bbox": [0, 0, 5, 5],
                "category_id": 1,
                "iscrowd": 1,
            },  # crowd: left out
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    src = tmp_path / "annotations" / "instances_val2017.json"
    src.write_text(json.dumps(coco))
    assert detect_format(src) == "coco"
    run_cli("convert", "web", src, tmp_path / "out")
    first, second = samples(tmp_path / "out")
    assert (first.id, first.kind, first.image_sizes) == ("11", "detection", [(40, 60)])
    assert first.boxes == [(10, 5, 30, 15), (30, 20, 55.5, 35)] and first.box_labels == ["cat", "dog"]
    assert first.images == [(tmp_path / "val2017" / "1.jpg").read_bytes()] and first.turns == []
    assert second.boxes == [(0, 0, 30, 30)] and second.box_labels == ["dog"] and second.box_image == [0]


def test_refcoco_records(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(jpeg(50, 100, 200))
    records = [
        {
            "ref_id": 7,
            "file_name": "images/a.jpg",
            "bbox": [20, 10, 50, 40],
            "sentences": [{"sent": "left cup"}, {"sent": "the red cup"}],
        },
        {"ref_id": 8, "file_name": "images/a.jpg", "bbox": [150, 0, 50, 100], "sentences": ["man on right"]},
    ]
    (tmp_path / "refs.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    assert detect_format(tmp_path / "refs.jsonl") == "refcoco"
    run_cli("convert", "web", tmp_path / "refs.jsonl", tmp_path / "out")
    got = samples(tmp_path / "out")
    assert [(s.id, s.box_labels, s.boxes) for s in got] == [
        ("7#0", ["left cup"], [(20, 10, 70, 50)]),
        ("7#1", ["the red cup"], [(20, 10, 70, 50)]),
        ("8", ["man on right"], [(150, 0, 200, 100)]),
    ]
    assert all(s.image_sizes == [(100, 200)] and s.kind == "detection" for s in got)


def test_one_bad_sample_in_3000_is_skipped_alone(tmp_path):
    (tmp_path / "img.png").write_bytes(encode_image(np.zeros((4, 4, 3), np.uint8), "png"))
    rows = [{"id": f"s{i}", "image": "img.png", "question": f"q{i}", "answer": f"a{i}"} for i in range(3000)]
    rows[1234]["image"] = "gone.png"
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    result = run_cli("convert", "web", tmp_path / "rows.jsonl", tmp_path / "out", "--on-error", "skip")
    assert "1 samples skipped" in result.output
    ds = ShardDataset(tmp_path / "out")
    assert len(ds) == 2999 and ds.num_episodes == 12  # the bad sample's group keeps its 255 others
    assert [s["source_ref"]["sample"] for s in ds.manifest.skipped] == ["s1234"]
    assert read_web_sample(ds, 1234).id == "s1235"


def noise_png(size: int = 56) -> bytes:
    return encode_image(np.random.default_rng(0).integers(0, 255, (size, size, 3), np.uint8), "png")


def write_rows(folder: Path, fmt: str, n: int) -> Path:
    """`n` samples of one ~9 KB incompressible image each, in `fmt`."""
    folder.mkdir(parents=True)
    image = noise_png()
    if fmt in ("jsonl", "llava"):
        (folder / "img.png").write_bytes(image)
        rows = [
            {
                "id": str(i),
                "image": "img.png",
                "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
            }
            for i in range(n)
        ]
        if fmt == "jsonl":
            (folder / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
            return folder / "rows.jsonl"
        (folder / "rows.json").write_text(json.dumps(rows))
        return folder / "rows.json"
    if fmt == "wds":
        import webdataset

        with webdataset.TarWriter(str(folder / "00000.tar")) as sink:
            for i in range(n):
                sink.write({"__key__": f"{i:06d}", "png": image, "txt": "a caption"})
        return folder
    import datasets

    data = datasets.Dataset.from_dict(
        {"image": [{"bytes": image, "path": None}] * n, "question": ["q"] * n, "answer": ["a"] * n},
        features=datasets.Features(
            {
                "image": datasets.Image(),
                "question": datasets.Value("string"),
                "answer": datasets.Value("string"),
            }
        ),
    )
    if fmt == "arrow":
        data.save_to_disk(str(folder / "ds"), max_shard_size="1MB")
        return folder / "ds"
    data.to_parquet(str(folder / "rows.parquet"), batch_size=25)
    return folder / "rows.parquet"


@pytest.mark.parametrize("fmt", ["jsonl", "llava", "wds", "arrow", "parquet"])
def test_peak_traced_memory_does_not_grow_with_the_dataset(tmp_path, fmt):
    """Issue 11's web item: no group re-reads the dataset; Python memory holds one group (plus
    fixed-size read buffers) whatever the number of samples."""
    peaks = {}
    options = ConvertOptions(progress=False, shard_bytes=500_000)
    for n in (24, 120, 960):  # the first run only imports what conversion needs
        src = write_rows(tmp_path / f"src{n}", fmt, n)
        tracemalloc.start()
        convert(WebSource(str(src), group_size=24), tmp_path / f"out{n}", options)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(ShardDataset(tmp_path / f"out{n}")) == n
    dataset_bytes = 960 * len(noise_png())  # 9 MB of images
    assert peaks[960] < 1.1 * peaks[120] + 100_000, peaks
    assert peaks[960] < 0.7 * dataset_bytes, (peaks, dataset_bytes)


def test_field_names_of_a_variant_and_unclear_layouts(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg(5))
    row = {
        "uid": "m1",
        "img": "a.jpg",
        "messages": [{"role": "user", "content": "<image>\nHi?"}, {"role": "assistant", "content": "Hello."}],
    }
    (tmp_path / "chat.jsonl").write_text(json.dumps(row) + "\n")
    fields = ("--field", "conversations=messages", "--field", "role=role", "--field", "text=content")
    args = ("--field", "image=img", "--field", "id=uid", *fields)
    run_cli("convert", "web", tmp_path / "chat.jsonl", tmp_path / "out", "--format", "llava", *args)
    (sample,) = samples(tmp_path / "out")
    assert (sample.id, sample.turns) == ("m1", [("user", "Hi?"), ("assistant", "Hello.")])
    (tmp_path / "caps.jsonl").write_text(json.dumps({"url": "a.jpg", "caption": "x"}) + "\n")
    with pytest.raises(SourceError, match=r"cannot tell the layout .*--field answer=caption --kind caption"):
        WebSource(str(tmp_path / "caps.jsonl"))
    with pytest.raises(ValueError, match=r"unknown web field name\(s\) \['answr'\]"):
        WebSource(str(tmp_path / "chat.jsonl"), fields={"answr": "x"})


def test_bench_convert_web_small(tmp_path):
    args = ("bench", "convert", "--format", "web", "--sizes", "60,240", "--dir", tmp_path, "--json")
    result = json.loads(run_cli(*args).output)
    assert [(r["format"], r["samples"]) for r in result["runs"]] == [
        ("wds", 60),
        ("wds", 240),
        ("llava", 60),
        ("llava", 240),
    ]
    for row in result["runs"]:
        assert (
            row["convert_samples_per_s"] > 0 and row["bound_samples_per_s"] > 0 and row["convert_rss_mb"] > 0
        )
    assert set(result["largest_over_smallest"]) == {"wds", "llava"}


def test_readme_caption_command_detects_jsonl_from_the_named_answer_field(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg(9))
    (tmp_path / "captions.jsonl").write_text(
        json.dumps({"image": "a.jpg", "caption": "a grey square"}) + "\n"
    )
    args = ("--kind", "caption", "--prompt-field", "", "--answer-field", "caption")
    run_cli("convert", "web", tmp_path / "captions.jsonl", tmp_path / "out", *args)
    (sample,) = samples(tmp_path / "out")
    assert (sample.kind, sample.turns) == ("caption", [("user", ""), ("assistant", "a grey square")])


def test_saved_dataset_dict_split(tmp_path):
    import datasets

    dataset, images = onevision_dataset()
    datasets.DatasetDict({"train": dataset, "validation": dataset.select([2])}).save_to_disk(
        str(tmp_path / "dd")
    )
    convert(WebSource(str(tmp_path / "dd"), split="validation"), tmp_path / "val")
    assert [s.id for s in samples(tmp_path / "val")] == ["ov-2"]
    with pytest.raises(SourceError, match=r"no split 'test'; the dataset has \['train', 'validation'\]"):
        convert(WebSource(str(tmp_path / "dd"), split="test"), tmp_path / "test")


def test_verify_deep_decodes_web_images(tmp_path):
    good = jpeg(40, 64, 64)
    bad = good[: len(good) // 2] + b"\xff\xd9"  # signature, header and end marker, but cut scan data
    (tmp_path / "good.jpg").write_bytes(good)
    (tmp_path / "bad.jpg").write_bytes(bad)
    rows = [{"id": n, "image": f"{n}.jpg", "question": "q", "answer": "a"} for n in ("good", "bad", "good")]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    convert(WebSource(str(tmp_path / "rows.jsonl")), tmp_path / "out")
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["verify", str(tmp_path / "out"), "--deep"])
    assert result.exit_code == 1 and "row 1 column 'images'" in result.output, result.output
