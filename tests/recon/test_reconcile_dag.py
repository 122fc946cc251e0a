"""closeout_reconcile as a real DAG run (``dag.test``) over data made by closeout's own flow (publish to the Stripe
sandbox, Stripe's events, journals), breaching through the real gate: the payouts DAG paused by the real Airflow API
server, one hold in ``closeout.payout_holds``, one e-mail at a local SMTP receiver and one webhook at a local HTTP
receiver; a repeat sends nothing, and a green run afterwards releases nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests
from closeout.warehouse.db import connect
from payments_support import last_month

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
import gate_support
import ledger_support

pytestmark = pytest.mark.integration

books = ledger_support.books  # the fixture: three invoices published, two paid, journals posted

# the gate's fixtures (the API server is shared with tests/gate: one per process)
api_server, airflow_api, smtp, hook_receiver, finance_conns = (
    gate_support.api_server, gate_support.airflow_api, gate_support.smtp, gate_support.hook_receiver,
    gate_support.finance_conns,
)  # fmt: skip
PERIOD = last_month().strftime("%Y-%m")
BREACH = "entries_to_invoice_lines"


@pytest.fixture
def docs(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "data_docs"
    monkeypatch.setenv("CLOSEOUT_DATA_DOCS_DIR", str(folder))
    return folder


@pytest.fixture
def payouts_dag(airflow_api, monkeypatch) -> str:
    """The DAG the gate pauses: closeout_payouts when the API server knows it, else the stand-in; unpaused."""
    known = requests.get(f"{airflow_api.url}/api/v2/dags/closeout_payouts",
                         headers={"Authorization": f"Bearer {airflow_api.token()}"}, timeout=30)  # fmt: skip
    dag_id = "closeout_payouts" if known.status_code == 200 else gate_support.TEST_DAG
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_DAG_ID", dag_id)
    airflow_api.set_paused(dag_id, False)
    return dag_id


def _checks(warehouse, airflow_run_id: str) -> dict[str, tuple]:
    rows = warehouse.rows(
        """SELECT c.check_name, c.status, c.observed, c.tolerance, c.evidence, c.run_id
           FROM closeout.recon_checks c JOIN closeout_data.recon_runs r USING (run_id)
           WHERE r.airflow_run_id = %s""",
        (airflow_run_id,),
    )
    return {r[0]: r[1:] for r in rows}


def _edit_after_invoicing(warehouse, delta: int) -> tuple[str, str]:
    """A new version of an invoiced entry lands (amount + delta) and drafting never runs to adjust the invoice."""
    source, source_id, version = warehouse.rows(
        """SELECT e.source, e.source_id, h.version FROM closeout.invoice_line_entries e
           JOIN closeout_data.time_entry_heads h USING (source, source_id) ORDER BY e.source_id LIMIT 1"""
    )[0]
    with connect() as conn:
        cols = [r[0] for r in conn.execute(
            """SELECT column_name FROM information_schema.columns WHERE table_schema = 'closeout_data'
               AND table_name = 'time_entry_versions' AND column_name NOT IN ('version', 'amount_minor')
               AND is_generated = 'NEVER' ORDER BY ordinal_position""").fetchall()]  # fmt: skip
        listed = ", ".join(cols)
        conn.execute(
            f"""INSERT INTO closeout_data.time_entry_versions ({listed}, version, amount_minor)
                SELECT {listed}, version + 1, amount_minor + %s FROM closeout_data.time_entry_versions
                WHERE source = %s AND source_id = %s AND version = %s""",
            (delta, source, source_id, version),
        )
        conn.execute("UPDATE closeout_data.time_entry_heads SET version = version + 1 WHERE source = %s "
                     "AND source_id = %s", (source, source_id))  # fmt: skip
        conn.commit()
    return source, source_id


def test_green_run_records_every_check_and_holds_nothing(warehouse, books, docs, run_dag) -> None:
    result = run_dag("closeout_reconcile", {"period": PERIOD})
    assert result.state == "success", result
    checks = _checks(warehouse, result.run_id)
    assert set(checks) == {"entries_to_invoice_lines", "expenses_to_invoice_lines", "invoices_to_stripe", "journals",
                           "payments_to_journals",
                           "accounting_ledger", "accounting_invoices", "accounting_links", "payouts_to_paid_invoices",
                           "stripe_objects", "stripe_balance", "stripe_fees", "stripe_payouts",
                           "tracker_billed_state"}  # fmt: skip
    statuses = {name: row[0] for name, row in checks.items()}
    assert {s for s in statuses.values()} <= {"passed", "not_applicable"}, statuses
    for name in ("entries_to_invoice_lines", "expenses_to_invoice_lines", "invoices_to_stripe", "journals",
                 "payments_to_journals"):
        assert statuses[name] == "passed", statuses
    assert all(row[4] == checks["journals"][4] for row in checks.values())  # one recon run
    assert warehouse.scalar("SELECT count(*) FROM closeout.recon_checks WHERE period = %s", (PERIOD,)) == 14
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds") == 0
    assert (docs / "index.html").is_file()


def test_breach_pauses_payouts_holds_once_alerts_once_and_green_releases_nothing(
    warehouse, books, docs, run_dag, payouts_dag, airflow_api, smtp, hook_receiver, finance_conns
) -> None:
    source, source_id = _edit_after_invoicing(warehouse, 5000)

    # 1. the breach: that check fails, and only it; the run fails
    first = run_dag("closeout_reconcile", {"period": PERIOD})
    assert first.state == "failed", first
    assert first.tries["reconcile"] == 1, first  # a verdict, not a transient error: no retry
    checks = _checks(warehouse, first.run_id)
    assert {k for k, v in checks.items() if v[0] in ("failed", "error")} == {BREACH}, checks
    _, observed, tolerance, evidence, recon_run = checks[BREACH]
    assert observed["by_currency"]["USD"]["difference_minor"] == -5000
    assert tolerance["default_minor"] == 0
    [row] = evidence["rows"]
    assert row["item"] == f"{source}:{source_id}" and row["difference_minor"] == -5000
    docs_link = evidence["data_docs"]
    assert docs_link.startswith("file://") and Path(docs_link.removeprefix("file://")).is_file()

    # through the real gate: paused by the API server, one hold, one e-mail, one webhook
    assert airflow_api.is_paused(payouts_dag) is True
    holds = warehouse.rows("SELECT hold_id, reason, recon_run_id, released_at FROM closeout.payout_holds")
    assert len(holds) == 1, holds
    hold_id, reason, hold_run, released_at = holds[0]
    assert hold_run == recon_run and released_at is None and BREACH in reason and PERIOD in reason
    assert len(smtp.messages) == 1 and len(hook_receiver.requests) == 1

    mail = smtp.messages[0]
    body = mail.body
    assert BREACH in mail.message["Subject"] and f"#{hold_id}" in mail.message["Subject"]
    for needed in (
        f"Check:     {BREACH}",  # the check
        f"Period:    {PERIOD}",  # the period
        "difference_minor: -50.00 USD (-5000 minor units)",  # the observed difference, in major units
        "Tolerance:",
        "default_minor: 0",  # the tolerance
        f"Hold id:   {hold_id}",  # the hold
        docs_link,  # where the evidence is
        f"python -m closeout.gate release --hold-id {hold_id}",  # how to release
        f"The Airflow DAG {payouts_dag} has been paused.",
        recon_run,
    ):
        assert needed in body, (needed, body)
    payload = hook_receiver.requests[0]["json"]
    assert payload["check_name"] == BREACH and payload["hold_id"] == hold_id and payload["period"] == PERIOD
    assert payload["observed"]["USD"]["difference_minor"] == -5000 and payload["tolerance"]["default_minor"] == 0
    assert payload["evidence"] == docs_link and payload["dag_paused"] is True and payload["dag_id"] == payouts_dag
    assert payload["release_command"].startswith(f"python -m closeout.gate release --hold-id {hold_id}")

    # 2. the same break again (after someone unpaused payouts): paused again, nothing new sent, no second hold
    airflow_api.set_paused(payouts_dag, False)
    again = run_dag("closeout_reconcile", {"period": PERIOD})
    assert again.state == "failed", again
    assert _checks(warehouse, again.run_id)[BREACH][0] == "failed"
    assert airflow_api.is_paused(payouts_dag) is True
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds") == 1
    assert len(smtp.messages) == 1 and len(hook_receiver.requests) == 1

    # 3. the data fixed (a new version back at the billed amount): green, and the hold stays open
    _edit_after_invoicing(warehouse, -5000)
    green = run_dag("closeout_reconcile", {"period": PERIOD})
    assert green.state == "success", green
    statuses = {k: v[0] for k, v in _checks(warehouse, green.run_id).items()}
    assert statuses[BREACH] == "passed" and set(statuses.values()) <= {"passed", "not_applicable"}, statuses
    assert warehouse.rows("SELECT hold_id, released_at FROM closeout.payout_holds") == [(hold_id, None)]
    assert len(smtp.messages) == 1 and len(hook_receiver.requests) == 1
    assert airflow_api.is_paused(payouts_dag) is True
