"""Conversion into object storage and dataset commands on URIs, against a real S3 server
(SeaweedFS on 127.0.0.1): stream and units conversions, SIGKILL during the upload then --resume,
verify / stats / info / merge on s3:// URIs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from click.testing import CliRunner

from vla_data.cli import main
from vla_data.convert import ConvertOptions, convert
from vla_data.samples import write_aloha_sample
from vla_data.shards import verify_dataset
from vla_data.shards.manifest import MANIFEST_FILE
from vla_data.shards.merge import merge_datasets
from vla_data.sources.hdf5 import HDF5Source

SHARD_BYTES = 40_000


@pytest.fixture(scope="module")
def aloha(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aloha_store")
    write_aloha_sample(folder, episodes=7, steps=25, height=48, width=64)
    return folder


def manifest_of(path) -> dict:
    data = json.loads((path / MANIFEST_FILE).read_text())
    data.pop("source")  # names the OUT-independent source; compared separately where it matters
    return data


def remote_manifest(s3_server, uri) -> dict:
    with s3_server.filesystem().open_input_stream(uri.removeprefix("s3://") + "/" + MANIFEST_FILE) as f:
        data = json.loads(f.read())
    data.pop("source")
    return data


def listing(s3_server, uri) -> list[str]:
    from pyarrow.fs import FileSelector

    root = uri.removeprefix("s3://")
    infos = s3_server.filesystem().get_file_info(FileSelector(root, recursive=True, allow_not_found=True))
    return sorted(i.path[len(root) + 1 :] for i in infos if i.type.name == "File")


def new_uri(s3_server, name: str) -> str:
    return f"s3://{s3_server.bucket}/{uuid.uuid4().hex[:8]}/{name}"


@pytest.mark.parametrize("executor", ["stream", "local"])
def test_convert_to_s3_equals_a_local_conversion(aloha, s3_server, tmp_path, executor):
    options = ConvertOptions(shard_bytes=SHARD_BYTES, executor=executor, unit_episodes=3)
    source = HDF5Source.from_paths(aloha, layout="aloha")
    convert(source, tmp_path / "local", options)
    uri = new_uri(s3_server, executor)
    remote = ConvertOptions(**{**vars(options), "storage_options": s3_server.storage_options})
    convert(source, uri, remote)
    assert remote_manifest(s3_server, uri) == manifest_of(tmp_path / "local")  # shard sha256s included
    files = listing(s3_server, uri)
    assert files[-1] == "shards/" + sorted(p.name for p in (tmp_path / "local" / "shards").iterdir())[-1]
    assert not [f for f in files if f.startswith(".units") or "progress" in f]
    assert verify_dataset(uri, storage_options=s3_server.storage_options) == []


def test_sigkill_during_upload_then_resume_then_verify(aloha, s3_server, tmp_path):
    uri = new_uri(s3_server, "killed")
    env = {**s3_server.env(), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "vla_data", "convert", "hdf5", str(aloha), uri, "--layout", "aloha"]
    command += ["--shard-size", "0.01", "--quiet"]  # one episode per shard: many uploads
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(f.startswith("shards/") for f in listing(s3_server, uri)):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    uploaded = listing(s3_server, uri)
    assert MANIFEST_FILE not in uploaded and len([f for f in uploaded if f.startswith("shards/")]) < 7
    refused = subprocess.run(command, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "--resume" in refused.stderr
    subprocess.run([*command, "--resume"], env=env, check=True)
    run = subprocess.run(
        [sys.executable, "-m", "vla_data", "verify", uri], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0 and "OK" in run.stdout, run.stderr
    convert(
        HDF5Source.from_paths(aloha, layout="aloha"), tmp_path / "local", ConvertOptions(shard_bytes=10_000)
    )
    assert remote_manifest(s3_server, uri) == manifest_of(tmp_path / "local")
    assert not (tmp_path / "cache" / "vla-data" / "staging").exists() or not any(
        (tmp_path / "cache" / "vla-data" / "staging").iterdir()
    )


def test_verify_stats_info_and_merge_on_uris(aloha, s3_server, tmp_path, monkeypatch):
    for key, value in s3_server.env().items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    files = HDF5Source.from_paths(aloha, layout="aloha").paths
    options = ConvertOptions(shard_bytes=SHARD_BYTES)
    a, b, merged = new_uri(s3_server, "a"), new_uri(s3_server, "b"), None
    merged = a.rsplit("/", 1)[0] + "/merged"
    b = a.rsplit("/", 1)[0] + "/b"
    convert(HDF5Source(paths=files[:3], layout="aloha", task="one"), a, options)
    convert(HDF5Source(paths=files[3:], layout="aloha", task="two"), b, options)
    convert(HDF5Source(paths=files[:3], layout="aloha", task="one"), tmp_path / "a", options)
    convert(HDF5Source(paths=files[3:], layout="aloha", task="two"), tmp_path / "b", options)
    runner = CliRunner()
    result = runner.invoke(main, ["merge", a, b, "-o", merged])
    assert result.exit_code == 0, result.output
    merge_datasets([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")
    assert remote_manifest(s3_server, merged) == manifest_of(tmp_path / "merged")
    info = json.loads(runner.invoke(main, ["info", merged, "--json"]).output)
    assert info["episodes"] == 7 and info["tasks"] == ["one", "two"] and "secret" not in json.dumps(info)
    assert runner.invoke(main, ["verify", merged]).exit_code == 0
    stats = runner.invoke(main, ["stats", merged])
    assert stats.exit_code == 0 and "action" in stats.output
    assert remote_manifest(s3_server, merged)["stats"] == manifest_of(tmp_path / "merged")["stats"]
    # a shard changed on the store is caught
    fs = s3_server.filesystem()
    shard = f"{merged.removeprefix('s3://')}/shards/shard-00001.arrow"
    with fs.open_input_stream(shard) as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    with fs.open_output_stream(shard) as f:
        f.write(bytes(data))
    problems = verify_dataset(merged)
    assert problems == [
        "shards/shard-00001.arrow: sha256 differs from the manifest (file changed or corrupt)"
    ]
    result = runner.invoke(main, ["--endpoint-url", s3_server.endpoint, "verify", merged])
    assert result.exit_code == 1 and "sha256 differs" in result.output


def test_ray_units_upload_from_the_workers(aloha, s3_server, tmp_path):
    """Ray workers convert their units on their own temporary disk and upload them; the driver only
    merges on the store. Same bytes as a local units conversion."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'vla-data[ray]')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    source = HDF5Source.from_paths(aloha, layout="aloha")
    options = ConvertOptions(shard_bytes=SHARD_BYTES, executor="local", unit_episodes=3)
    convert(source, tmp_path / "local", options)
    uri = new_uri(s3_server, "ray")
    remote = ConvertOptions(
        **{**vars(options), "executor": "ray", "storage_options": s3_server.storage_options}
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        convert(source, uri, remote)
    finally:
        ray.shutdown()
    assert remote_manifest(s3_server, uri) == manifest_of(tmp_path / "local")
    assert verify_dataset(uri, storage_options=s3_server.storage_options) == []
