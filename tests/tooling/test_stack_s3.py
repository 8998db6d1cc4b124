"""The native stack's S3 API (moto with its objects kept in a folder): what a client was told is stored survives
the server's death, even by SIGKILL; deletions, overwrites, metadata and multipart uploads come back as they were."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from receivers import free_port

from mlops.serving.client import wait_until

pytestmark = pytest.mark.service

Start = Callable[[], subprocess.Popen[bytes]]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Start, str]]:
    """A function that starts the server on one port and folder (again after it died), and its endpoint."""
    port, started = free_port(), []

    def start() -> subprocess.Popen[bytes]:
        log = (tmp_path / "s3.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "mlops.tooling.stack_s3", "--port", str(port), "--data", str(tmp_path / "s3")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        started.append(process)

        def answers() -> bool:
            try:
                return httpx.get(f"{endpoint}/moto-api/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(answers, 60, interval=0.2), (tmp_path / "s3.log").read_text()
        return process

    endpoint = f"http://127.0.0.1:{port}"
    yield start, endpoint
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="mlops",
        aws_secret_access_key="x",
        region_name="us-east-1",
    )


def test_objects_survive_a_killed_server(server: tuple[Start, str], tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    start, endpoint = server
    first = start()
    s3 = _client(endpoint)
    s3.create_bucket(Bucket="data")
    s3.create_bucket(Bucket="gone")
    s3.put_object(Bucket="data", Key="landing/a b/batch.csv", Body=b"x,y\n1,2\n", Metadata={"origin": "test"})
    s3.put_object(Bucket="data", Key="model/MLmodel", Body=b"v1", ContentType="text/yaml")
    s3.put_object(Bucket="data", Key="model/MLmodel", Body=b"v2", ContentType="text/yaml")  # overwritten
    s3.put_object(Bucket="data", Key="deleted", Body=b"soon gone")
    s3.delete_object(Bucket="data", Key="deleted")
    s3.put_object(Bucket="data", Key="many/1", Body=b"1")
    s3.delete_objects(Bucket="data", Delete={"Objects": [{"Key": "many/1"}]})
    s3.delete_bucket(Bucket="gone")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 * 1024 * 1024))  # two parts of a multipart upload
    s3.upload_file(
        str(big), "data", "model/weights.bin", Config=TransferConfig(multipart_threshold=5 * 2**20)
    )

    os.killpg(first.pid, signal.SIGKILL)  # no chance to save anything at exit
    first.wait()
    start()

    s3 = _client(endpoint)
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == {"data"}
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="data")["Contents"])
    assert keys == ["landing/a b/batch.csv", "model/MLmodel", "model/weights.bin"]
    batch = s3.get_object(Bucket="data", Key="landing/a b/batch.csv")
    assert batch["Body"].read() == b"x,y\n1,2\n" and batch["Metadata"] == {"origin": "test"}
    model = s3.get_object(Bucket="data", Key="model/MLmodel")
    assert model["Body"].read() == b"v2" and model["ContentType"] == "text/yaml"
    assert s3.get_object(Bucket="data", Key="model/weights.bin")["Body"].read() == big.read_bytes()


def test_a_fresh_folder_starts_empty_and_a_stored_bucket_keeps_its_region(server: tuple[Start, str]) -> None:
    start, endpoint = server
    first = start()
    s3 = _client(endpoint)
    assert s3.list_buckets()["Buckets"] == []
    s3.create_bucket(Bucket="in-ireland", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    first.send_signal(signal.SIGTERM)  # what `mlops stack down` sends
    first.wait(timeout=30)
    start()

    assert _client(endpoint).get_bucket_location(Bucket="in-ireland")["LocationConstraint"] == "eu-west-1"
