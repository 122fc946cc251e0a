"""The month-end close with its artifacts in S3 (a real S3 API server on loopback, moto's server mode), through
``dag.test``: a dry run, then a close whose reconcile breaches. Every link a person is given - the run notes (set
through a real Airflow API server), the finance e-mails (a local SMTP receiver), the chat payloads and the close
reports - is opened over plain HTTP from this process, which holds no store credentials of its own, and what it
opens is checked: the report pages and their JSON, the accounting export's files against its manifest's sha256, the
Great Expectations Data Docs pages. Nothing names a worker's disk or a bare ``s3://`` location where a link belongs.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests
from closeout import artifacts
from conftest import DagRunResult, load_dag
from payments_support import last_month

from sandbox.harvest import generate_dataset
from tests.artifacts.s3_support import make_bucket, s3_env, s3_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
import gate_support

pytestmark = pytest.mark.integration

api_server, airflow_api, smtp, hook_receiver, finance_conns = (
    gate_support.api_server, gate_support.airflow_api, gate_support.smtp, gate_support.hook_receiver,
    gate_support.finance_conns,
)  # fmt: skip

DAG_ID = "closeout_month_end_close"
BUCKET = f"closeout-close-{uuid.uuid4().hex[:8]}"  # moto's buckets live as long as the process: one per run
PREFIX = "finance"
PERIOD_START = last_month()
PERIOD = PERIOD_START.strftime("%Y-%m")
NEXT_START = (PERIOD_START + timedelta(days=32)).replace(day=1)
CONF = {"period": PERIOD, "trackers": ["harvest"]}
URL_RE = re.compile(r"https?://[^\s<>\"']+")


@pytest.fixture
def store(monkeypatch):
    with s3_server() as endpoint:
        make_bucket(endpoint, BUCKET)
        s3_env(monkeypatch, endpoint, f"s3://{BUCKET}/{PREFIX}")
        for local in ("CLOSEOUT_EXPORT_DIR", "CLOSEOUT_DATA_DOCS_DIR", "CLOSEOUT_REPORTS_URL",
                      "CLOSEOUT_DRY_RUN_EXPORT_DIR"):  # fmt: skip
            monkeypatch.delenv(local, raising=False)
        yield endpoint


@pytest.fixture
def books(warehouse, harvest, stripe_sandbox, tmp_path, monkeypatch):
    """Two clients (USD, EUR) with ~10 weeks of time in Harvest; drafts need no approval."""
    harvest.load(generate_dataset(160, seed=3, anchor=date.today(), days=70, n_clients=2))
    config = tmp_path / "clients.yaml"
    config.write_text("defaults:\n  require_approval: false\nclients: []\n")
    monkeypatch.setenv("CLOSEOUT_BILLING_CONFIG", str(config))
    return tmp_path


def close(conf: dict, *, at: datetime | None = None, mark_success: str | None = None) -> DagRunResult:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    dag = load_dag(DAG_ID)
    kwargs = {"logical_date": at, "run_after": at} if at else {}
    dag_run = dag.test(run_conf=conf, mark_success_pattern=mark_success, **kwargs)
    with create_session() as session:
        dr = session.query(DagRun).filter(DagRun.dag_id == DAG_ID, DagRun.run_id == dag_run.run_id).one()
        tis = dr.get_task_instances(session=session)
        return DagRunResult(dag_run.run_id, str(dr.state), {t.task_id: str(t.state) for t in tis},
                            {t.task_id: t.try_number for t in tis})  # fmt: skip


def before(task_id: str) -> str:
    """A ``mark_success_pattern`` naming every task upstream of ``task_id`` (they keep their success)."""
    upstream = load_dag(DAG_ID).get_task(task_id).get_flat_relative_ids(upstream=True)
    return "|".join(f"^{re.escape(t)}$" for t in sorted(upstream))


def note_of(api: gate_support.ApiServer, run_id: str) -> str:
    answer = requests.get(f"{api.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}",
                          headers={"Authorization": f"Bearer {api.token()}"}, timeout=30)  # fmt: skip
    answer.raise_for_status()
    return answer.json()["note"] or ""


class Opener:
    """Opens artifact links the way a person's browser does: a plain GET, no credentials. Remembers what it
    opened, so the test can say every link was tried."""

    def __init__(self, endpoint: str) -> None:
        self.root = f"{endpoint}/{BUCKET}/{PREFIX}/"
        self.opened: dict[str, bytes] = {}

    def is_artifact(self, link: str) -> bool:
        return link.startswith(self.root)

    def get(self, link: str) -> bytes:
        link = link.replace("&amp;", "&")
        assert self.is_artifact(link), f"not a link into the artifact store: {link}"
        assert "X-Amz-Signature=" in link and "X-Amz-Expires=" in link, f"not presigned: {link}"
        if link not in self.opened:
            got = requests.get(link, timeout=30)
            assert got.status_code == 200, (link, got.status_code, got.text[:300])
            self.opened[link] = got.content
        return self.opened[link]

    def key(self, link: str) -> str:
        """The object's key below the prefix (the path of the link, without the query)."""
        return link.split("?", 1)[0][len(self.root) :]


def links_in(text: str) -> list[str]:
    return [u.rstrip(".,;)") for u in URL_RE.findall(text)]


def assert_no_local_paths(text: str, where: str) -> None:
    assert "file://" not in text and "s3://" not in text, f"{where} names a location, not a link:\n{text}"
    assert "/tmp/" not in text and "/.closeout/" not in text, f"{where} names a worker's disk:\n{text}"


def check_report(opener: Opener, link: str, *, dry_run: bool) -> dict[str, bytes]:
    """Open the report page and every artifact link on it; check each by what it is. Returns key -> bytes."""
    page = opener.get(link).decode()
    key = opener.key(link)
    assert key == f"reports/{PERIOD}/{'dry-run/' if dry_run else ''}index.html", key
    assert ("(dry run)" in page) is dry_run
    hrefs = [h.replace("&amp;", "&") for h in re.findall(r'href="([^"#][^"]*)"', page)]
    for href in hrefs:
        assert not href.startswith(("file:", "/", "s3:")), f"the report links a location, not a link: {href}"
    artifact_links = [h for h in hrefs if opener.is_artifact(h)]
    opened = {opener.key(h): opener.get(h) for h in artifact_links}
    docs = [k for k in opened if k.startswith("data_docs/")]
    assert docs, f"the report links no Data Docs: {hrefs}"
    for k in docs:
        assert k.startswith("data_docs/dry-run/") is dry_run, k
        assert b"<html" in opened[k].lower(), k
    export = f"exports/{'dry-run/' if dry_run else ''}{PERIOD}/"
    manifest = json.loads(opened[f"{export}manifest.json"])
    assert manifest["period"] == PERIOD, manifest
    if not dry_run:  # a dry run publishes nothing, so its export holds no invoice
        assert manifest["invoices"] > 0 and manifest["files"], manifest
    for f in manifest["files"]:
        body = opened[export + f["name"]]  # every file of the export is linked, and is the file the manifest lists
        assert hashlib.sha256(body).hexdigest() == f["sha256"] and len(body) == f["bytes"], f
    return opened


def test_the_close_puts_its_artifacts_in_s3_and_every_link_people_get_opens(
    warehouse, books, harvest, stripe_sandbox, store, airflow_api, smtp, hook_receiver, finance_conns, monkeypatch
) -> None:
    opener = Opener(store)
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_DAG_ID", "closeout_payouts")
    airflow_api.set_paused("closeout_payouts", False)

    # 1. a dry run: its report, export and Data Docs in the store under dry-run/, its note links the report
    dry = close({**CONF, "dry_run": True})
    assert dry.state == "success", dry
    row = warehouse.rows("SELECT report_url FROM closeout.period_closes WHERE airflow_run_id = %s", (dry.run_id,))
    assert row[0][0] == f"s3://{BUCKET}/{PREFIX}/reports/{PERIOD}/dry-run/index.html", row  # a location is recorded
    note = note_of(airflow_api, dry.run_id)
    assert note.startswith("DRY RUN: Close report: "), note
    assert_no_local_paths(note, "the dry run's note")
    [dry_link] = links_in(note)
    dry_files = check_report(opener, dry_link, dry_run=True)
    dry_json = json.loads(opener.get(artifacts.url(artifacts.path("reports", PERIOD, "dry-run",
                                                                  f"close-report-{PERIOD}.json"))))  # fmt: skip
    assert dry_json["dry_run"] is True and {a["location"].rsplit("/", 1)[-1] for a in dry_json["artifacts"]} >= {
        "manifest.json"}  # fmt: skip
    assert not artifacts.exists(artifacts.path("reports", PERIOD, "index.html")), "a dry run writes no real report"

    # 2. a close that fails at the export (a local override pointing at a file), so the period's entry can change
    (books / "not-a-folder").write_text("")
    monkeypatch.setenv("CLOSEOUT_EXPORT_DIR", str(books / "not-a-folder"))
    at = datetime.now(UTC).replace(microsecond=0)
    assert close(CONF, at=at).task_states["accounting_export"] == "failed"
    monkeypatch.delenv("CLOSEOUT_EXPORT_DIR")
    entry_id, hours = warehouse.rows(
        """SELECT e.source_id, t.hours FROM closeout.invoices i JOIN closeout.invoice_line_entries e USING (invoice_id)
           JOIN closeout.time_entries t ON t.source = e.source AND t.source_id = e.source_id
           WHERE i.period_start >= %s AND i.period_end < %s ORDER BY e.source_id LIMIT 1""",
        (PERIOD_START, NEXT_START),
    )[0]
    harvest.update_entry(int(entry_id), hours=float(hours) + 2.0)
    assert load_dag("closeout_sync_harvest").test().state == "success"

    # 3. the close again from the export: the export lands in the store, the reconcile breaches, the gate holds
    result = close(CONF, at=at, mark_success=before("accounting_export"))
    assert result.state == "failed" and result.task_states["reconcile"] == "failed", result
    holds = warehouse.rows("SELECT hold_id, details ->> 'evidence' FROM closeout_data.payout_holds "
                           "WHERE released_at IS NULL")  # fmt: skip
    assert len(holds) == 1, holds
    assert holds[0][1].startswith(f"s3://{BUCKET}/{PREFIX}/data_docs/"), holds  # the hold records the location
    report_location = f"s3://{BUCKET}/{PREFIX}/reports/{PERIOD}/index.html"
    assert artifacts.exists(report_location), "the report is written before the breach fails the close"
    evidence = warehouse.rows(
        """SELECT c.evidence ->> 'data_docs', r.data_docs FROM closeout.recon_checks c
           JOIN closeout_data.recon_runs r USING (run_id)
           WHERE c.check_name = 'entries_to_invoice_lines' ORDER BY r.started_at DESC LIMIT 1""")[0]  # fmt: skip
    for recorded in evidence:  # evidence rows carry the artifact's location in the store
        assert recorded.startswith(f"s3://{BUCKET}/{PREFIX}/data_docs/") and artifacts.exists(recorded), evidence

    # the run's note links the report
    note = note_of(airflow_api, result.run_id)
    assert note.startswith("Reconciliation breached, payouts held. Close report: "), note
    assert_no_local_paths(note, "the breach note")
    [report_link] = links_in(note)
    assert opener.key(report_link) == f"reports/{PERIOD}/index.html"
    real_files = check_report(opener, report_link, dry_run=False)
    assert set(real_files).isdisjoint(dry_files), "the dry run and the close wrote to the same objects"

    # finance's e-mails: the hold alert (Data Docs evidence and the report) and the export's failure alert
    mails = smtp.messages
    hold_mails = [m for m in mails if "entries_to_invoice_lines" in m.message["Subject"]]
    assert len(hold_mails) == 1, [m.message["Subject"] for m in mails]
    opened_from_mail = 0
    for mail in mails:
        assert_no_local_paths(mail.body, f"the e-mail {mail.message['Subject']!r}")
        for link in links_in(mail.body):
            if opener.is_artifact(link):
                body = opener.get(link)
                key = opener.key(link)
                assert (key == f"reports/{PERIOD}/index.html" and b"Month-end close" in body) or (
                    key.startswith("data_docs/") and not key.startswith("data_docs/dry-run/")
                    and b"<html" in body.lower()), key  # fmt: skip
                opened_from_mail += 1
    hold_links = [opener.key(u) for u in links_in(hold_mails[0].body) if opener.is_artifact(u)]
    assert f"reports/{PERIOD}/index.html" in hold_links, hold_mails[0].body
    assert any(k.startswith("data_docs/") for k in hold_links), hold_mails[0].body
    failure_mails = [m for m in mails if "accounting_export" in m.message["Subject"]]
    assert failure_mails, [m.message["Subject"] for m in mails]
    assert any(opener.key(u) == f"reports/{PERIOD}/index.html"
               for m in failure_mails for u in links_in(m.body) if opener.is_artifact(u)), failure_mails[0].body
    assert opened_from_mail >= 3

    # the chat payloads carry the same links
    for request in hook_receiver.requests:
        payload = request["json"]
        for field in ("report_url", "evidence"):
            value = payload.get(field)
            if isinstance(value, str) and "://" in value:
                assert not value.startswith(("s3://", "file://")), (field, value)
                if opener.is_artifact(value):
                    assert opener.get(value)
    hold_payloads = [r["json"] for r in hook_receiver.requests if r["json"].get("hold_id")]
    assert len(hold_payloads) == 1 and opener.key(hold_payloads[0]["report_url"]) == f"reports/{PERIOD}/index.html"
    assert b"<html" in opener.get(hold_payloads[0]["evidence"]).lower()
