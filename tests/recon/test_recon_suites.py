"""The GX suites over real data made by closeout's own flow: drafts published to the Stripe sandbox, Stripe's
events applied, journals posted, the accounting system's invoice export ingested. Green first, then one
natural break per check, each failing its own check, and an export lag within a configured tolerance."""

from __future__ import annotations

import csv
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.accounting.ingest import ingest_xero_invoices
from closeout.recon import run_reconciliation
from closeout.warehouse.db import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
import ledger_support
from ledger_support import follow

pytestmark = pytest.mark.integration

books = ledger_support.books  # the fixture: three invoices published, two paid, journals posted

XERO_HEADER = ["ContactName", "InvoiceNumber", "Reference", "InvoiceDate", "DueDate", "Total", "TaxTotal",
               "InvoiceAmountPaid", "InvoiceAmountDue", "Description", "Quantity", "UnitAmount", "LineAmount",
               "Currency", "Type", "Status"]  # fmt: skip


def _xero_export(warehouse, path: Path, alter: dict[str, int] | None = None) -> Path:
    """The accounting system's invoice export, as Xero writes it, of what closeout published."""
    alter = alter or {}
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(XERO_HEADER)
        for number, iid, total, cur, day in warehouse.rows(
            """SELECT stripe_number, invoice_id, total_minor, currency, period_start FROM closeout.invoices
               WHERE stripe_number IS NOT NULL AND status IN ('open', 'paid', 'uncollectible') ORDER BY 1"""
        ):
            amount = f"{D(alter.get(number, total)) / 100:.2f}"
            w.writerow(["Client", number, iid, day.strftime("%d/%m/%Y"), day.strftime("%d/%m/%Y"), amount, "0.00",
                        "0.00", amount, "Consulting", "1", amount, amount, cur, "Sales Invoice",
                        "Awaiting Payment"])  # fmt: skip
    with connect() as conn:
        ingest_xero_invoices(conn, path)
        conn.commit()
    return path


def _run(tmp_path, **kwargs):
    with connect() as conn:
        return run_reconciliation(conn, data_docs_dir=tmp_path / "docs", **kwargs)


def _statuses(result) -> dict[str, str]:
    return {c.check_name: c.status for c in result.checks}


GREEN = {"entries_to_invoice_lines": "passed", "expenses_to_invoice_lines": "passed", "invoices_to_stripe": "passed",
         "journals": "passed",
         "payments_to_journals": "passed", "accounting_ledger": "not_applicable", "accounting_invoices": "passed",
         "payouts_to_paid_invoices": "passed", "accounting_links": "not_applicable",  # no API read-back here
         # the cash checks against Stripe's own lists: the books fixture never runs the cash sync
         "stripe_objects": "not_applicable", "stripe_balance": "not_applicable", "stripe_fees": "not_applicable",
         "stripe_payouts": "not_applicable",
         "tracker_billed_state": "not_applicable"}  # fmt: skip
STAND_IN_PAYOUTS = """CREATE VIEW closeout.payout_items AS SELECT * FROM (VALUES
    (1::bigint, 1::bigint, 'harvest:u1'::text, 'USD'::text, 100::bigint, 'paid'::text, 'k1'::text, 'tr_1'::text))
    AS p(payout_id, batch_id, payee_key, currency, amount_minor, status, idempotency_key, external_id)"""


def _payouts_view(present: bool) -> None:
    """closeout.payout_items as the payouts migration makes it (a contract stand-in when it is not installed),
    or absent."""
    with connect() as conn:
        exists = conn.execute("SELECT to_regclass('closeout.payout_items') IS NOT NULL").fetchone()[0]
        if present and not exists:
            conn.execute(STAND_IN_PAYOUTS)
        if not present and exists:
            conn.execute("DROP VIEW closeout.payout_items CASCADE")
        conn.commit()


def test_green_run_records_every_check_and_renders_data_docs(warehouse, books, tmp_path) -> None:
    _xero_export(warehouse, tmp_path / "xero.csv")
    _payouts_view(present=True)
    result = _run(tmp_path)
    assert _statuses(result) == GREEN, [(c.check_name, c.status, c.evidence) for c in result.checks]
    assert result.status == "passed"
    rows = warehouse.rows("SELECT check_name, status, evidence FROM closeout.recon_checks WHERE run_id = %s",
                          (result.run_id,))  # fmt: skip
    assert {r[0]: r[1] for r in rows} == GREEN
    evidence = {r[0]: r[2] for r in rows}
    link = evidence["journals"]["data_docs"]
    assert link.startswith("file://") and Path(link.removeprefix("file://")).is_file()
    assert (tmp_path / "docs" / "index.html").is_file()

    # without the payouts view (closeout_payouts not installed), that suite is not applicable, with the reason
    _payouts_view(present=False)
    result = _run(tmp_path)
    payouts = result.by_name()["payouts_to_paid_invoices"]
    assert payouts.status == "not_applicable" and "payout_items does not exist" in payouts.evidence["reason"]
    assert result.status == "passed"


def test_a_stripe_total_that_differs_fails_invoices_to_stripe_only(warehouse, stripe_sandbox, tmp_path) -> None:
    from closeout.payments import tasks
    from closeout.payments.publish import PublishIncomplete
    from payments_support import seed_drafts

    a, _ = seed_drafts({"a": [D("2")], "b": [D("1")]})
    stripe_sandbox.inject("error_500", path_prefix="/v1/invoices/", after=2, times=2)
    with pytest.raises(PublishIncomplete):
        tasks.publish_drafts("first")
    sid = warehouse.scalar("SELECT stripe_invoice_id FROM closeout.invoices WHERE invoice_id = %s", (a,))
    stripe_sandbox.tamper_invoice_total(sid, 12_345)
    with pytest.raises(Exception):  # noqa: B017 - the stop fails the publish run once
        tasks.publish_drafts("second")
    follow()
    result = _run(tmp_path)
    statuses = _statuses(result)
    assert statuses["invoices_to_stripe"] == "failed"
    assert {k for k, v in statuses.items() if v == "failed"} == {"invoices_to_stripe"}, statuses
    [row] = result.by_name()["invoices_to_stripe"].evidence["rows"]
    assert row["item"] == a and row["kind"] == "exception:total_mismatch" and row["difference_minor"] == 12_345 - 20_000


def test_an_entry_edited_after_invoicing_without_adjustment_fails_entries_only(warehouse, books, tmp_path) -> None:
    source, source_id, version = warehouse.rows(
        "SELECT source, source_id, version FROM closeout.invoice_line_entries ORDER BY source_id LIMIT 1"
    )[0]
    with connect() as conn:  # a new version lands, and drafting never runs to adjust the invoice
        cols = [r[0] for r in conn.execute(
            """SELECT column_name FROM information_schema.columns WHERE table_schema = 'closeout_data'
               AND table_name = 'time_entry_versions' AND column_name NOT IN ('version', 'amount_minor')
               AND is_generated = 'NEVER' ORDER BY ordinal_position""").fetchall()]  # fmt: skip
        listed = ", ".join(cols)
        conn.execute(
            f"""INSERT INTO closeout_data.time_entry_versions ({listed}, version, amount_minor)
                SELECT {listed}, version + 1, amount_minor + 5000 FROM closeout_data.time_entry_versions
                WHERE source = %s AND source_id = %s AND version = %s""",
            (source, source_id, version),
        )
        conn.execute("UPDATE closeout_data.time_entry_heads SET version = version + 1 WHERE source = %s "
                     "AND source_id = %s", (source, source_id))  # fmt: skip
        conn.commit()
    result = _run(tmp_path)
    statuses = _statuses(result)
    assert {k for k, v in statuses.items() if v == "failed"} == {"entries_to_invoice_lines"}, statuses
    [row] = result.by_name()["entries_to_invoice_lines"].evidence["rows"]
    assert row["kind"] == "entry_billed" and row["item"] == f"{source}:{source_id}" and row["difference_minor"] == -5000


def test_an_altered_export_row_fails_accounting_invoices_and_a_tolerance_absorbs_a_small_lag(
    warehouse, books, tmp_path
) -> None:
    number, total = warehouse.rows("SELECT stripe_number, total_minor FROM closeout.invoices "
                                   "WHERE stripe_number IS NOT NULL ORDER BY 1 LIMIT 1")[0]  # fmt: skip
    _xero_export(warehouse, tmp_path / "xero.csv", alter={number: total - 300})
    result = _run(tmp_path)
    statuses = _statuses(result)
    assert {k for k, v in statuses.items() if v == "failed"} == {"accounting_invoices"}, statuses
    [row] = result.by_name()["accounting_invoices"].evidence["rows"]
    assert (row["item"], row["kind"], row["difference_minor"]) == (number, "total", -300)

    lag = {"checks": {"accounting_invoices": {"currencies": {"USD": 500}}}}
    assert _statuses(_run(tmp_path, tolerance_overrides=lag))["accounting_invoices"] == "passed"
    tight = {"checks": {"accounting_invoices": {"currencies": {"USD": 299, "EUR": 100000}}}}
    assert _statuses(_run(tmp_path, tolerance_overrides=tight))["accounting_invoices"] == "failed"


def test_a_payment_recorded_without_its_journal_fails_payments_to_journals(warehouse, books, stripe_sandbox,
                                                                           tmp_path) -> None:  # fmt: skip
    from closeout.payments import tasks

    stripe_sandbox.pay_invoice(books["c"][1])
    tasks.collect_events("late")
    tasks.apply_events("late")  # recorded; the journals are not posted
    result = _run(tmp_path)
    statuses = _statuses(result)
    failed = {k for k, v in statuses.items() if v == "failed"}
    # the payment has no journal, and so the ledger's receivable still holds what the client paid: both say so
    assert failed == {"payments_to_journals", "journals"}, statuses
    [row] = result.by_name()["payments_to_journals"].evidence["rows"]
    assert row["kind"] == "payment_without_journal"
    # with the external side cut off before the payment, the lag is absorbed for this check
    from datetime import UTC, datetime, timedelta

    before = datetime.now(UTC) - timedelta(hours=1)
    assert _statuses(_run(tmp_path, external_cutoff=before))["payments_to_journals"] == "passed"
