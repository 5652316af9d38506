"""`vla-data view`: the JSON endpoints of a real server on 127.0.0.1, the static export, the CLI."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vla_data.demo import run_demo
from vla_data.loader import LoaderConfig, ki_attention_mask, make_loader
from vla_data.loader.chunks import chunk_indices
from vla_data.normalize import Normalizer
from vla_data.shards import ShardDataset
from vla_data.sources.web_sample import read_web_sample
from vla_data.tokenizers.fast import FastTokenizer
from vla_data.view import ViewApp, ViewServer, export_site
from vla_data.view.batch_api import CONTRACT_KEYS, MASK_COLOURS
from vla_data.view.dataset_api import episode_page

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """The demo's robot dataset, FAST tokenizer, web dataset and loader.json."""
    return run_demo(tmp_path_factory.mktemp("view_demo"), echo=lambda _: None)


@pytest.fixture(scope="module")
def server(demo):
    """The viewer of the demo's loader config (robot dataset 0, web dataset 1, its FAST tokenizer)."""
    with ViewServer(ViewApp(demo["loader"]), port=0) as s:
        yield s


def get(server: ViewServer, route: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(server.url + route, timeout=60) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def get_json(server: ViewServer, route: str):
    status, content_type, body = get(server, route)
    assert (status, content_type) == (200, "application/json"), body
    return json.loads(body)


def test_index_and_static_files(server, demo):
    index = get_json(server, "api/index")
    assert [d["path"] for d in index["datasets"]] == [str(demo["dataset"]), str(demo["web"])]
    assert [d["kind"] for d in index["datasets"]] == ["robot", "web"]
    assert index["fast"]["path"] == str(demo["tokenizer"])
    assert index["loader"]["batches_per_epoch"] == len(make_loader(demo["loader"]))
    status, content_type, page = get(server, "")
    assert (status, content_type) == (200, "text/html") and b"static/app.js" in page
    assert get(server, "static/app.js")[2].startswith(b"// vla-data view")
    assert b"cdn" not in page.lower() and b"http" not in get(server, "static/app.js")[2].replace(
        b"http://www.w3.org/2000/svg", b""
    )


def test_dataset_summary_and_histograms(server, demo):
    ds = ShardDataset(demo["dataset"])
    summary = get_json(server, "api/d/0/summary")
    m = ds.manifest
    assert (summary["episodes"], summary["frames"], summary["fps"]) == (m.num_episodes, m.num_frames, m.fps)
    assert summary["tasks"]["items"] == m.tasks and summary["skipped"]["items"] == m.skipped
    assert summary["features"].keys() == m.features.keys()
    assert summary["cameras"] == [n for n, f in m.features.items() if f.kind == "image"]
    assert [s["sha256"] for s in summary["shards"]["items"]] == [s.sha256 for s in m.shards]
    assert summary["shards"]["total"] == len(m.shards) and summary["bytes"] == sum(s.bytes for s in m.shards)
    assert get_json(server, "api/d/0/list/tasks/0") == summary["tasks"]
    status, _, body = get(server, "api/d/0/list/shards/1")
    assert status == 404 and "pages 0..0" in json.loads(body)["error"]
    assert np.allclose(summary["stats"]["action"]["q99"], m.stats["action"]["q99"], atol=1e-6)

    hist = get_json(server, "api/d/0/histograms")
    assert hist["episodes_sampled"] == m.num_episodes  # small dataset: every episode
    for name in ("action", "observation.state"):
        dims = hist["features"][name]["dims"]
        assert len(dims) == m.features[name].shape[0]
        assert all(sum(d["counts"]) == m.num_frames for d in dims)
        values = np.concatenate([ds.episode(e, [name])[name] for e in range(ds.num_episodes)])
        counts, _ = np.histogram(values[:, 3], bins=hist["bins"], range=(dims[3]["lo"], dims[3]["hi"]))
        assert dims[3]["counts"] == counts.tolist()


def test_episode_pages(server, demo):
    ds = ShardDataset(demo["dataset"])
    page = get_json(server, "api/d/0/episodes/0")  # the route is a page of `episode_page`
    assert page["total"] == ds.num_episodes and len(page["episodes"]) == ds.num_episodes
    assert [e["length"] for e in page["episodes"]] == ds.episode_length.tolist()
    assert page["episodes"][2]["source"] == ds.source_ref(2)
    # pagination (small pages of the same dataset): pages cover every episode exactly once
    pages = [episode_page(ds, p, size=4) for p in range(2)]
    assert [p["pages"] for p in pages] == [2, 2]
    assert [e["index"] for p in pages for e in p["episodes"]] == list(range(ds.num_episodes))
    status, _, body = get(server, "api/d/0/episodes/1")
    assert status == 404 and "pages 0..0" in json.loads(body)["error"]


def test_episode_arrays_and_frames(server, demo):
    ds = ShardDataset(demo["dataset"])
    episode = get_json(server, "api/d/0/episode/2")
    data = ds.episode(2)
    assert episode["length"] == len(data["action"]) and episode["task"] == ds.task(2)
    assert set(episode["series"]) == {"action", "observation.state", "observation.velocity"}
    for name, series in episode["series"].items():
        assert np.allclose(series["values"], data[name], atol=1e-6)
        assert len(series["names"]) == data[name].shape[1]
    cameras = [c["name"] for c in episode["cameras"]]
    assert cameras == ["observation.images.cam_high", "observation.images.cam_left_wrist"]
    for t in (0, episode["length"] - 1):
        status, content_type, body = get(server, f"api/d/0/frame/2/{cameras[1]}/{t}.jpg")
        assert (status, content_type) == (200, "image/jpeg")
        assert body == data[cameras[1]][t]  # the stored bytes, not a re-encode
    status, _, body = get(server, f"api/d/0/frame/2/{cameras[0]}/{episode['length']}.jpg")
    assert status == 404 and f"frames 0..{episode['length'] - 1}" in json.loads(body)["error"]
    status, _, body = get(server, "api/d/0/frame/2/observation.images.nope/0.jpg")
    assert status == 404 and "cam_high" in json.loads(body)["error"]
    status, _, body = get(server, f"api/d/0/episode/{ds.num_episodes}")
    assert status == 404 and f"no episode {ds.num_episodes}" in json.loads(body)["error"]


def test_fast_reconstruction(server, demo):
    ds = ShardDataset(demo["dataset"])
    fast = FastTokenizer.from_pretrained(demo["tokenizer"])
    out = get_json(server, "api/d/0/fast/1")
    actions = ds.episode(1, ["action"])["action"]
    H, T = fast.time_horizon, len(actions)
    assert out["horizon"] == H and out["chunk_starts"] == list(range(0, T, H))
    norm = Normalizer.from_stats(ds.manifest.stats["action"], "quantile")
    rows, _ = chunk_indices(T, np.arange(0, T, H), H)
    ids = fast.encode(norm.normalize(actions[rows]), on_error="clip")
    decoded, valid = fast.decode(ids, horizon=H, action_dim=actions.shape[1])
    expected = norm.unnormalize(decoded).reshape(-1, actions.shape[1])[:T]
    assert out["chunk_tokens"] == [len(s) for s in ids] and out["chunk_valid"] == valid.tolist()
    assert np.allclose(out["values"], expected, atol=1e-6)
    # the reconstruction is close to the actions (a tenth of each dimension's spread)
    assert (np.array(out["rmse"]) < 0.1 * actions.std(axis=0)).all()
    for t in (0, 7, T - 1):
        rows, _ = chunk_indices(T, np.array([t]), H)
        assert out["tokens_per_chunk"][out["token_starts"].index(t)] == len(
            fast.encode(norm.normalize(actions[rows]), on_error="clip")[0]
        )


def test_web_samples(server, demo):
    raw = Path(demo["raw"]).parent / "raw_web"
    rows = [json.loads(line) for line in (raw / "samples.jsonl").read_text().splitlines()]
    page = get_json(server, "api/d/1/samples/0")
    assert page["total"] == len(rows) and page["pages"] == -(-len(rows) // len(page["samples"]))
    for sample in page["samples"][:4]:
        row = rows[sample["index"]]
        assert [t["role"] for t in sample["turns"]] == ["user", "assistant"]
        assert sample["turns"][0]["text"] == row["question"]  # stored; the loader applies the template
        assert sample["turns"][1]["text"] == row["answer"] and sample["kind"] == row["kind"]
        assert sample["boxes"] == []
        status, content_type, body = get(server, sample["images"][0]["url"])
        assert (status, content_type) == (200, "image/png") and body == (raw / row["image"]).read_bytes()
        assert (sample["images"][0]["width"], sample["images"][0]["height"]) == Image.open(
            io.BytesIO(body)
        ).size
    one = get_json(server, "api/d/1/sample/7")
    assert one["turns"][1]["text"] == rows[7]["answer"] and one["total"] == len(rows)


def test_web_detection_boxes(tmp_path):
    """Stored boxes (pixels of their image) are served with their labels."""
    from vla_data.convert import ConvertOptions, convert
    from vla_data.images import encode_image
    from vla_data.sources.web import WebSource

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/a.png").write_bytes(encode_image(np.zeros((32, 64, 3), np.uint8), "png"))
    rows = [
        {"ref_id": 1, "file_name": "a.png", "bbox": [8, 8, 24, 16], "sentences": ["cat"]},
        {"ref_id": 2, "file_name": "a.png", "bbox": [0, 0, 64, 32], "sentences": ["dog"]},
    ]
    (tmp_path / "raw/d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    convert(WebSource(str(tmp_path / "raw/d.jsonl"), format="refcoco"), tmp_path / "web", ConvertOptions())
    with ViewServer(ViewApp(tmp_path / "web"), port=0) as s:
        cat, dog = get_json(s, "api/d/0/sample/0"), get_json(s, "api/d/0/sample/1")
    assert cat["boxes"] == [{"image": 0, "box": [8.0, 8.0, 32.0, 24.0], "label": "cat"}]
    assert dog["boxes"] == [{"image": 0, "box": [0.0, 0.0, 64.0, 32.0], "label": "dog"}]
    assert cat["kind"] == "detection" and cat["turns"] == []


def write_web_datasets(folder: Path) -> dict[str, Path]:
    """A LLaVA conversation with two images and two turns each side, and a RefCOCO box."""
    from vla_data.convert import ConvertOptions, convert
    from vla_data.images import encode_image
    from vla_data.sources.web import WebSource

    raw = folder / "raw"
    raw.mkdir(parents=True)
    left = np.zeros((32, 64, 3), np.uint8)
    left[:, :32] = 200
    (raw / "a.png").write_bytes(encode_image(left, "png"))
    (raw / "b.jpg").write_bytes(encode_image(np.full((48, 48, 3), 90, np.uint8), "jpeg"))
    talk = ["<image>\n<image>\nWhat differs?", "The brightness.", "Which is darker?", "The second."]
    conversation = [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(talk)]
    llava = [{"id": "x1", "image": ["a.png", "b.jpg"], "conversations": conversation}]
    (raw / "llava.json").write_text(json.dumps(llava))
    convert(WebSource(str(raw / "llava.json"), format="llava"), folder / "llava", ConvertOptions())
    ref = {"ref_id": 7, "file_name": "a.png", "bbox": [8, 8, 24, 16], "sentences": ["bright half"]}
    (raw / "ref.jsonl").write_text(json.dumps(ref) + "\n")
    convert(WebSource(str(raw / "ref.jsonl"), format="refcoco"), folder / "ref", ConvertOptions())
    return {"raw": raw, "llava": folder / "llava", "ref": folder / "ref"}


def test_web_sample_with_images_and_turns(tmp_path):
    web = write_web_datasets(tmp_path)
    with ViewServer(ViewApp(web["llava"]), port=0) as s:
        sample = get_json(s, "api/d/0/sample/0")
        assert sample["id"] == "x1" and sample["kind"] == "chat"
        assert [(t["role"], t["text"]) for t in sample["turns"]] == [
            ("user", "What differs?"),
            ("assistant", "The brightness."),
            ("user", "Which is darker?"),
            ("assistant", "The second."),
        ]
        assert [(i["width"], i["height"]) for i in sample["images"]] == [(64, 32), (48, 48)]
        for image, name in zip(sample["images"], ("a.png", "b.jpg"), strict=True):
            assert get(s, image["url"])[2] == (web["raw"] / name).read_bytes()  # bytes copied unchanged
        status, _, body = get(s, "api/d/0/image/0/2.png")
        assert status == 404 and "has 2 images" in json.loads(body)["error"]


def test_loader_batch_is_the_training_batch(server, demo):
    loader = make_loader(demo["loader"])
    stream = iter(loader)
    next(stream)
    expected = next(stream)  # batch 1, as a training loop gets it
    out = get_json(server, "api/batch/1")
    config = LoaderConfig.load(demo["loader"])
    assert (out["epoch"], out["index"], out["batch_size"]) == (0, 1, config.batch_size)
    assert out["slots"] == list(config.image_slots)
    mask, _ = ki_attention_mask(expected)
    robot = Normalizer.from_stats(ShardDataset(demo["dataset"]).manifest.stats["action"], "quantile")
    checked_robot = 0
    for b, sample in enumerate(out["samples"]):
        real = expected["token_mask"][b].numpy()
        assert sample["tokens"]["ids"] == expected["tokens"][b][real].tolist()
        for key, name in (("ar", "token_ar_mask"), ("loss", "token_loss_mask"), ("fast", "fast_token_mask")):
            assert sample["tokens"][key] == expected[name][b][real].int().tolist()
        assert sample["source"]["index"] == int(expected["source"][b])
        assert sample["has_actions"] == bool(expected["has_actions"][b])
        counters = {k: v[b].item() for k, v in expected.items() if k not in CONTRACT_KEYS}
        assert sample["counters"] == counters
        assert sample["actions"]["is_pad"] == expected["action_is_pad"][b].int().tolist()
        dims = expected["action_dim_mask"][b].numpy()
        assert np.allclose(sample["actions"]["values"], expected["actions"][b].numpy()[:, dims], atol=1e-6)
        for image in sample["images"]:
            assert image["mask"] == bool(expected["image_masks"][image["slot"]][b])
            body = get(server, image["url"])[2]
            pixels = np.asarray(Image.open(io.BytesIO(body)))
            assert (pixels == expected["images"][image["slot"]][b].numpy().transpose(1, 2, 0)).all()
        drawn = np.asarray(Image.open(io.BytesIO(get(server, sample["mask"]["url"])[2])))
        assert ((drawn != MASK_COLOURS["blocked"]).any(axis=2) == mask[b].numpy()).all()
        if sample["source"]["kind"] == "robot":  # the named episode/step holds this chunk
            s = sample["source"]
            actions = ShardDataset(s["path"]).episode(s["episode"], ["action"])["action"]
            rows, _ = chunk_indices(len(actions), np.array(s["step"]), config.horizon)
            assert np.allclose(sample["actions"]["values"], robot.normalize(actions[rows]), atol=1e-5)
            assert sample["text"]["prefix"].startswith("<bos>Task: pick up the cube, State: ")
            assert sample["text"]["postfix"].startswith("Action: F") and sample["text"]["postfix"].endswith(
                "|<eos>"
            )
            checked_robot += 1
        else:
            web = ShardDataset(s := sample["source"]["path"])
            (_, answer) = read_web_sample(web, sample["source"]["sample"]).turns[-1]
            assert sample["text"]["postfix"] == answer + "<eos>", s
    assert 0 < checked_robot < len(out["samples"])  # the demo mixes robot and web samples


def test_errors_name_the_fix(server, demo, tmp_path):
    status, _, body = get(server, "api/batch/-1")
    assert status == 404
    status, _, body = get(server, "api/nothing")
    assert status == 404 and "no such page" in json.loads(body)["error"]
    with ViewServer(ViewApp(demo["dataset"]), port=0) as s:
        status, _, body = get(s, "api/batch/0")
        assert status == 404 and "loader config" in json.loads(body)["error"]
        status, _, body = get(s, "api/d/0/fast/0")
        assert status == 404 and "--tokenizer" in json.loads(body)["error"]
    with pytest.raises(FileNotFoundError, match="no such dataset or loader config"):
        ViewApp(tmp_path / "missing")


def test_dataset_behind_a_uri(demo):
    """A file:// URI is read through its pyarrow filesystem, one episode per ranged read."""
    ds = ShardDataset(demo["dataset"])
    uri = Path(demo["dataset"]).resolve().as_uri()
    with ViewServer(ViewApp(uri), port=0) as s:
        assert get_json(s, "api/d/0/summary")["path"] == uri
        episode = get_json(s, "api/d/0/episode/3")
        assert np.allclose(
            episode["series"]["action"]["values"], ds.episode(3, ["action"])["action"], atol=1e-6
        )
        camera = episode["cameras"][0]["name"]
        for t in (0, 1, 9):
            assert get(s, f"api/d/0/frame/3/{camera}/{t}.jpg")[2] == ds.episode(3, [camera])[camera][t]


def test_static_export(demo, tmp_path):
    app = ViewApp(demo["loader"])
    index = export_site(app, tmp_path / "site", episodes=(0, 2, 99), batches=1)
    assert index == tmp_path / "site/index.html"
    assert b"window.VLA_STATIC = true" in index.read_bytes()
    assert (tmp_path / "site/static/app.js").read_bytes() == (
        ROOT / "vla_data/view/static/app.js"
    ).read_bytes()

    def load(route: str):
        text = (tmp_path / "site" / (route + ".js")).read_text()
        prefix = f"VLA.receive({json.dumps(route)},"
        assert text.startswith(prefix) and text.endswith(");\n")
        return json.loads(text[len(prefix) : -3])

    assert load("api/index")["static"] == {
        "episodes": {"0": [0, 2]},
        "samples": {"1": list(range(24))},
        "batches": [0],
    }
    assert load("api/d/0/episode/2") == json.loads(app.get("api/d/0/episode/2").body)
    assert load("api/d/0/fast/2") == json.loads(app.get("api/d/0/fast/2").body)
    ds = ShardDataset(demo["dataset"])
    for e in (0, 2):
        frames = sorted((tmp_path / "site/api/d/0/frame" / str(e)).glob("*/*.jpg"))
        assert len(frames) == 2 * int(ds.episode_length[e])
    assert not (tmp_path / "site/api/d/0/frame/1").exists()
    assert (tmp_path / "site/api/d/0/frame/0/observation.images.cam_high/5.jpg").read_bytes() == ds.episode(
        0
    )["observation.images.cam_high"][5]
    batch = load("api/batch/0")
    assert len(batch["samples"]) == LoaderConfig.load(demo["loader"]).batch_size
    assert all((tmp_path / "site" / s["mask"]["url"]).exists() for s in batch["samples"])
    assert not (tmp_path / "site/api/batch/1.js").exists()


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "vla_data", "view", *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_cli_export_and_serve(demo, tmp_path):
    proc = _cli(str(demo["dataset"]), "--export", str(tmp_path / "site"), "--episodes", "1")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and str(tmp_path / "site" / "index.html") in out
    assert (tmp_path / "site/api/d/0/episode/1.js").exists() and not (tmp_path / "site/api/batch").exists()

    with ViewServer(ViewApp(demo["dataset"]), port=0) as taken:
        port = str(taken.httpd.server_address[1])
        proc = _cli(str(demo["dataset"]), "--port", port, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and f"cannot serve on 127.0.0.1:{port}" in err and "--port" in err

    proc = _cli(str(demo["dataset"]), "--port", "0")
    try:
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/d/0/summary", timeout=60) as r:
            assert json.loads(r.read())["path"] == str(demo["dataset"])
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped" in out
