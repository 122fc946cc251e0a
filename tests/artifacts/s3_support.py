"""A real S3 API server on loopback (moto's server mode) and the environment that points closeout at it."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import boto3

KEY, SECRET, REGION = "closeout-test-key", "closeout-test-secret", "eu-west-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def s3_server() -> Iterator[str]:
    """Start moto's threaded S3 server on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def make_bucket(endpoint: str, bucket: str) -> None:
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                          region_name=REGION)
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})


def s3_env(monkeypatch, endpoint: str, url: str) -> None:
    """``CLOSEOUT_ARTIFACTS_URL`` plus the ``closeout_artifacts`` connection as ``AIRFLOW_CONN_*`` JSON."""
    monkeypatch.setenv("CLOSEOUT_ARTIFACTS_URL", url)
    monkeypatch.delenv("CLOSEOUT_ARTIFACTS_PUBLIC_URL", raising=False)
    monkeypatch.delenv("CLOSEOUT_REPORTS_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_CLOSEOUT_ARTIFACTS", json.dumps({
        "conn_type": "aws", "login": KEY, "password": SECRET,
        "extra": {"endpoint_url": endpoint, "region_name": REGION}}))  # fmt: skip
    # boto must not find other credentials first
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
