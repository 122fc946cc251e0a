"""Where a person is handed an artifact (a run note, a failure alert, the close report's file list) it is a link made
by the store (presigned against a real S3 API server on loopback, a public https base, or file:// for a local base),
never a bare location or a worker's path; and a link survives the credential masking alerts apply."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests
from closeout import artifacts
from closeout.alerts.failure import FailureFacts, compose_failure_alert
from closeout.close.notes import NOTE_LIMIT, linked_note
from closeout.close.report_data import close_artifacts

from tests.artifacts.s3_support import make_bucket, s3_env, s3_server

BUCKET = f"closeout-links-{uuid.uuid4().hex[:8]}"  # moto's buckets live as long as the process: one per run


@pytest.fixture(scope="module")
def endpoint():
    with s3_server() as url:
        make_bucket(url, BUCKET)
        yield url


@pytest.fixture
def s3(endpoint, monkeypatch):
    s3_env(monkeypatch, endpoint, f"s3://{BUCKET}/ops")
    return endpoint


def _failure(**facts) -> FailureFacts:
    return FailureFacts("closeout_month_end_close", "accounting_export", "manual__1", 3, None, None,
                        {"period": "2026-11"}, "RuntimeError", "the export failed", None, facts)  # fmt: skip


def test_link_text_links_every_location_under_the_base_and_nothing_else(s3, endpoint) -> None:
    report = artifacts.path("reports", "2026-11", "index.html")
    artifacts.write(report, b"<h1>report</h1>")
    text = artifacts.link_text(f"Close report: {report}. Records: closeout.period_closes (run 3)")
    assert text.startswith(f"Close report: {endpoint}/{BUCKET}/ops/reports/2026-11/index.html?") and text.endswith(
        ". Records: closeout.period_closes (run 3)"), text  # fmt: skip
    link = text.split(" ")[2].rstrip(".")
    assert requests.get(link, timeout=10).content == b"<h1>report</h1>"
    other = "s3://another-bucket/x.html and /srv/reports/x.html"
    assert artifacts.link_text(other) == other  # not under the base: left as it is
    assert artifacts.link_text("") == ""


def test_a_run_note_links_the_report_within_airflows_limit(s3, endpoint, monkeypatch) -> None:
    report = artifacts.path("reports", "2026-11", "dry-run", "index.html")
    artifacts.write(report, b"dry")
    note = linked_note(f"DRY RUN: Close report: {report}")
    assert "s3://" not in note and len(note) <= NOTE_LIMIT
    assert requests.get(note.removeprefix("DRY RUN: Close report: "), timeout=10).content == b"dry"
    # a link that would not fit (e.g. a session token in it) leaves the location and says where the link is
    monkeypatch.setenv(artifacts.PUBLIC_URL_ENV, "https://files.example.com/" + "x" * NOTE_LIMIT)
    long = linked_note(f"Close report: {report}")
    assert long.startswith(f"Close report: {report} (the link is too long") and len(long) <= NOTE_LIMIT


def test_a_public_base_gives_https_links(s3, monkeypatch) -> None:
    monkeypatch.setenv(artifacts.PUBLIC_URL_ENV, "https://files.example.com/closeout")
    report = artifacts.path("reports", "2026-11", "index.html")
    assert linked_note(f"Close report: {report}") == (
        "Close report: https://files.example.com/closeout/reports/2026-11/index.html")


def test_a_local_base_gives_file_links(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(artifacts.URL_ENV, str(tmp_path / "artifacts"))
    monkeypatch.delenv(artifacts.PUBLIC_URL_ENV, raising=False)
    report = artifacts.path("reports", "2026-11", "index.html")
    assert linked_note(f"Close report: {report}") == f"Close report: {Path(report).as_uri()}"


def test_a_failure_alert_keeps_its_presigned_links_through_the_masking(s3, endpoint) -> None:
    report = artifacts.path("reports", "2026-11", "index.html")
    docs = artifacts.path("data_docs", "index.html")
    artifacts.write(report, b"report page")
    artifacts.write(docs, b"<html>docs</html>")
    # the message carries a credential-shaped text, which is still masked
    shaped = "upload failed: X-Amz-Signature=deadbeef password=hunter2"
    failure = FailureFacts(**{**_failure(report_url=report, evidence=docs).__dict__, "message": shaped})
    alert = compose_failure_alert(failure, audience="finance", money=True, cause_id=7, occurrences=1)
    assert "hunter2" not in alert.text and "deadbeef" not in alert.text
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in alert.text.splitlines()
             if line.strip().startswith(("Report:", "Evidence:"))}  # fmt: skip
    assert requests.get(lines["Report"], timeout=10).content == b"report page"
    assert requests.get(lines["Evidence"], timeout=10).content == b"<html>docs</html>"
    assert alert.payload["report_url"] == lines["Report"] and "<<artifact-link" not in alert.text
    assert "s3://" not in alert.text


def test_an_alert_names_the_location_when_the_store_gives_no_link(monkeypatch) -> None:
    monkeypatch.setenv(artifacts.URL_ENV, "memory://closeout-alerts/base")  # fsspec memory: no presigning
    monkeypatch.delenv(artifacts.PUBLIC_URL_ENV, raising=False)
    report = artifacts.path("reports", "2026-11", "index.html")
    alert = compose_failure_alert(_failure(report_url=report), audience="platform", money=False, cause_id=1,
                                  occurrences=1)  # fmt: skip
    assert f"Report:    {report}" in alert.text


def test_the_close_report_lists_the_files_its_close_recorded() -> None:
    state = {"period_closes": [
        {"close_run_id": 4, "dry_run": True, "steps": {
            "accounting_export": {"summary": {"folder": "s3://b/p/exports/dry-run/2026-11",
                                              "files": [{"name": "quickbooks_invoices.csv", "rows": 3}]}},
            "reconcile": {"summary": {"data_docs": "s3://b/p/data_docs/dry-run/index.html"}}}},
        {"close_run_id": 5, "dry_run": False, "steps": {}}]}  # fmt: skip
    assert close_artifacts(state, "4", None) == (
        {"label": "Accounting export: manifest.json", "location": "s3://b/p/exports/dry-run/2026-11/manifest.json"},
        {"label": "Accounting export: quickbooks_invoices.csv",
         "location": "s3://b/p/exports/dry-run/2026-11/quickbooks_invoices.csv"},
        {"label": "Reconciliation Data Docs (dry run)", "location": "s3://b/p/data_docs/dry-run/index.html"},
    )  # fmt: skip
    # the reconciliation section already links a real close's Data Docs: not listed twice
    assert close_artifacts(state, "4", {"data_docs": "s3://b/p/data_docs/dry-run/index.html"})[-1]["label"] == (
        "Accounting export: quickbooks_invoices.csv")
    assert close_artifacts(state, "5", None) == () and close_artifacts(state, None, None) == ()
