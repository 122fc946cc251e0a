"""The chain's artifacts land in an S3 bucket (a real S3 API server on loopback, moto's server mode), and the
links the finance alert and the close report give open over plain HTTP from this process, which holds no
store credentials of its own: the accounting export of published invoices, a reconcile's Great Expectations
Data Docs, and the month's close report."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
import requests
from closeout import artifacts
from closeout.accounting.export import run_export
from closeout.alerts.compose import BreachFacts, compose_hold_alert
from closeout.close import report
from closeout.payments import tasks as payment_tasks
from closeout.recon import run_reconciliation
from closeout.warehouse.db import connect
from payments_support import last_month, seed_drafts

from tests.artifacts.s3_support import make_bucket, s3_env, s3_server

pytestmark = pytest.mark.integration

BUCKET = "closeout-chain"


@pytest.fixture
def store(monkeypatch):
    with s3_server() as endpoint:
        make_bucket(endpoint, BUCKET)
        s3_env(monkeypatch, endpoint, f"s3://{BUCKET}/finance")
        for local in ("CLOSEOUT_EXPORT_DIR", "CLOSEOUT_DATA_DOCS_DIR", "CLOSEOUT_REPORTS_URL"):
            monkeypatch.delenv(local, raising=False)
        yield endpoint


def _get(link: str, endpoint: str) -> bytes:
    assert link.startswith(endpoint + f"/{BUCKET}/finance/") and "X-Amz-Signature=" in link, link
    got = requests.get(link, timeout=10)
    assert got.status_code == 200, (link, got.status_code, got.text[:300])
    return got.content


def test_export_data_docs_and_close_report_land_in_the_bucket_and_their_links_open(
    warehouse, stripe_sandbox, store, tmp_path
):
    seed_drafts({"a": [D("2")], "b": [D("1.5")]})
    payment_tasks.publish_drafts("artifacts")
    period = last_month().strftime("%Y-%m")

    # the accounting export: written to the bucket, nothing left on this worker's disk
    manifest = run_export(period, airflow_run_id="artifacts")
    folder = f"s3://{BUCKET}/finance/exports/{period}"
    assert manifest["folder"] == folder and manifest["invoices"] == 2
    names = sorted(n.rsplit("/", 1)[-1] for n in artifacts.listing(folder))
    assert names == sorted(["manifest.json", *(f["name"] for f in manifest["files"])])
    recorded = json.loads(_get(manifest["manifest_url"], store))
    assert recorded["invoices"] == 2 and recorded["files"] == manifest["files"]
    with connect() as conn:
        assert conn.execute("SELECT folder FROM closeout_data.accounting_export_runs WHERE export_run_id = %s",
                            (manifest["export_run_id"],)).fetchone()[0] == folder  # fmt: skip
    assert not (tmp_path / "exports").exists()

    # a reconcile: GX builds its Data Docs in a temporary folder, they are published to the bucket
    with connect() as conn:
        recon = run_reconciliation(conn, period=period)
    docs = f"s3://{BUCKET}/finance/data_docs/"
    assert recon.data_docs and recon.data_docs.startswith(docs), recon.data_docs
    assert b"<html" in _get(artifacts.url(recon.data_docs), store).lower()
    ran = [c for c in recon.checks if c.status in ("passed", "failed")]
    assert ran, [(c.check_name, c.status) for c in recon.checks]
    for check in ran:
        page = check.evidence["data_docs"]
        assert page.startswith(docs) and "/tmp" not in page, page
        assert b"<html" in _get(artifacts.url(page), store).lower()

    # the close report: <artifacts>/reports/<period>/ by default
    with connect() as conn:
        rep = report.build_report(conn, period, close_run_id="manual__artifacts")
    urls = report.write_report(rep)
    assert urls["html"] == report.report_url(period) == f"s3://{BUCKET}/finance/reports/{period}/index.html"
    page = _get(artifacts.url(urls["html"]), store).decode()
    assert "manual__artifacts" in page
    assert json.loads(_get(artifacts.url(urls["json"]), store))["period"] == period
    # the page links the reconcile's Data Docs as presigned links that open
    links = [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', page) if "/data_docs/" in h]
    assert links, "the report links no Data Docs"
    for link in links:
        assert b"<html" in _get(link, store).lower()

    # the finance alert: its evidence and report links open
    facts = BreachFacts(recon.run_id, period, "invoices_to_stripe", {}, {}, {}, recon.data_docs)
    alert = compose_hold_alert(facts, hold_id=1, opened_at=datetime.now(UTC), dag_id="closeout_payouts",
                               paused=True, report_url=report.report_url(period))  # fmt: skip
    assert alert.payload["evidence"] != recon.data_docs and "s3://" not in alert.text
    assert b"<html" in _get(alert.payload["evidence"], store).lower()
    assert "manual__artifacts" in _get(alert.payload["report_url"], store).decode()
    assert alert.payload["report_url"] in alert.text and alert.payload["evidence"] in alert.text
