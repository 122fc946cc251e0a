"""The artifact store against a real S3 API server on loopback and against the local default."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from closeout import artifacts

from tests.artifacts.s3_support import make_bucket, s3_env, s3_server


@pytest.fixture(scope="module")
def endpoint():
    with s3_server() as url:
        make_bucket(url, "closeout-artifacts")
        yield url


def test_s3_write_read_and_presigned_link_opens_over_http(endpoint, monkeypatch):
    s3_env(monkeypatch, endpoint, "s3://closeout-artifacts/prod")
    target = artifacts.path("reports", "2026-11", "index.html")
    assert target == "s3://closeout-artifacts/prod/reports/2026-11/index.html"
    artifacts.write(target, b"<h1>November</h1>")
    assert artifacts.read(target) == b"<h1>November</h1>"
    assert artifacts.exists(target)
    link = artifacts.url(target)
    assert link.startswith(endpoint) and "Signature" in link and "Expires=604800" in link.replace("X-Amz-", "")
    got = requests.get(link, timeout=10)
    assert got.status_code == 200 and got.content == b"<h1>November</h1>"
    # without the signature the object is not public
    assert requests.get(link.split("?")[0], timeout=10).status_code == 403


def test_link_lifetime_and_public_base(endpoint, monkeypatch):
    s3_env(monkeypatch, endpoint, "s3://closeout-artifacts/prod")
    target = artifacts.path("exports", "2026-11", "manifest.json")
    artifacts.write(target, b"{}")
    monkeypatch.setenv("CLOSEOUT_ARTIFACTS_LINK_SECONDS", "600")
    assert "Expires=600" in artifacts.url(target).replace("X-Amz-", "")
    monkeypatch.setenv("CLOSEOUT_ARTIFACTS_LINK_SECONDS", "999999999")
    with pytest.raises(artifacts.ArtifactError, match="LINK_SECONDS"):
        artifacts.url(target)
    monkeypatch.setenv("CLOSEOUT_ARTIFACTS_PUBLIC_URL", "https://files.example.com/closeout/")
    assert artifacts.url(target) == "https://files.example.com/closeout/exports/2026-11/manifest.json"


def test_upload_folder_and_listing(endpoint, monkeypatch, tmp_path):
    s3_env(monkeypatch, endpoint, "s3://closeout-artifacts/up")
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "index.html").write_bytes(b"i")
    (tmp_path / "a" / "b" / "c.html").write_bytes(b"c")
    written = artifacts.upload_folder(tmp_path, artifacts.path("data_docs"))
    assert written == ["s3://closeout-artifacts/up/data_docs/a/b/c.html", "s3://closeout-artifacts/up/data_docs/index.html"]
    assert artifacts.listing(artifacts.path("data_docs")) == ["s3://closeout-artifacts/up/data_docs/index.html"]
    artifacts.remove(written[1])
    assert not artifacts.exists(written[1])


def test_wrong_secret_is_refused(endpoint, monkeypatch):
    s3_env(monkeypatch, endpoint, "s3://no-such-bucket/x")
    with pytest.raises(Exception):  # noqa: B017 - s3fs raises its own FileNotFoundError/PermissionError subclasses
        artifacts.write(artifacts.path("f.txt"), b"x")


def test_local_default_and_file_links(monkeypatch, tmp_path):
    monkeypatch.delenv("CLOSEOUT_ARTIFACTS_URL", raising=False)
    monkeypatch.delenv("CLOSEOUT_ARTIFACTS_PUBLIC_URL", raising=False)
    monkeypatch.setenv("CLOSEOUT_HOME", str(tmp_path / "state"))
    assert artifacts.base() == str(tmp_path / "state" / "artifacts")
    target = artifacts.path("reports", "2026-11", "index.html")
    artifacts.write(target, b"page")
    assert Path(target).read_bytes() == b"page"
    assert artifacts.url(target) == Path(target).as_uri()
    with pytest.raises(artifacts.ArtifactError, match="leaves"):
        artifacts.path("reports", "..", "..", "etc")
