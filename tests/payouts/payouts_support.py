"""Paid invoices built through closeout's own capture, drafting, publishing and Stripe events, a green
reconciliation to pass the gate, and payee files for the payouts tests."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from billing_support import Books, Entry
from closeout.payments import tasks as payment_tasks
from closeout.warehouse.db import connect
from payments_support import last_month

Work = dict[str, list[tuple[str, Decimal]]]  # client -> [(user, hours)]


def user_key(user: str) -> str:
    return f"harvest:{user}"


def draft_work(work: Work, *, rate: Decimal = Decimal("100.00"), first_id: int = 1) -> None:
    """One draft per client for last month, one entry per (user, hours), through closeout's capture and drafting;
    nothing published."""
    start = last_month()
    with connect() as conn:
        books = Books(conn)
        books.configure({
            "defaults": {"require_approval": False},
            "clients": [{"client_key": f"harvest:{c}", "currency": "USD", "grouping": "entry",
                         "name": f"Client {c.upper()}", "email": f"ap@{c}.example"} for c in work],
        })  # fmt: skip
        n = first_id
        entries = []
        for client, items in work.items():
            for i, (user, hours) in enumerate(items):
                entries.append(Entry(str(n), client=client, user=user, hours=hours, rate=rate,
                                     spent_date=start + timedelta(days=i % 27)))  # fmt: skip
                n += 1
        books.put(*entries)
        books.draft()
        conn.commit()


def seed_invoices(warehouse, work: Work, *, rate: Decimal = Decimal("100.00"), first_id: int = 1) -> dict[str, tuple]:
    """One invoice per client for last month, one entry per (user, hours), published and finalized through
    closeout. Returns client -> (invoice_id, stripe_invoice_id, total_minor)."""
    draft_work(work, rate=rate, first_id=first_id)
    payment_tasks.publish_drafts("publish")
    rows = warehouse.rows(
        "SELECT client_key, invoice_id, stripe_invoice_id, total_minor FROM closeout.invoices WHERE status = 'open'"
    )
    return {c.removeprefix("harvest:"): (iid, sid, total) for c, iid, sid, total in rows}


def pay(sandbox, invoices: dict[str, tuple], clients: list[str]) -> None:
    """The customers pay in Stripe; closeout learns it only from the events (backfill, apply)."""
    for client in clients:
        sandbox.pay_invoice(invoices[client][1])
    payment_tasks.collect_events("payouts-test")
    payment_tasks.apply_events("payouts-test")


def green_recon(run_id: str = "recon-1", status: str = "passed", period: str | None = None) -> None:
    """A finished reconciliation run whose checks have ``status`` (the first) and 'passed' (the second), for
    ``period`` (default: last month, the billing period of the invoices seeded here; the gate wants the paid
    work's period covered). Written where the recon stage keeps its runs (migration 0010) or, before that stage
    exists, into a stand-in table."""
    period = period or last_month().strftime("%Y-%m")
    rows = [(run_id, period, "invoices_to_stripe", status), (run_id, period, "journals", "passed")]
    with connect() as conn:
        if conn.execute("SELECT to_regclass('closeout_data.recon_checks')").fetchone()[0]:
            conn.execute(
                """INSERT INTO closeout_data.recon_runs (run_id, period, ledger_cutoff, external_cutoff, finished_at,
                       status) VALUES (%s, %s, now(), now(), clock_timestamp(), %s)""",
                (run_id, period, "passed" if status == "passed" else "failed"),
            )
            for row in rows:
                conn.execute(
                    """INSERT INTO closeout_data.recon_checks (run_id, period, check_name, suite, status)
                       VALUES (%s, %s, %s, 'test', %s)""",
                    row,
                )
        else:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS closeout.recon_checks (run_id text, period text, check_name text,
                       status text, observed jsonb, tolerance jsonb, evidence jsonb,
                       checked_at timestamptz NOT NULL DEFAULT clock_timestamp())"""
            )
            for row in rows:
                conn.execute(
                    "INSERT INTO closeout.recon_checks (run_id, period, check_name, status) VALUES (%s, %s, %s, %s)",
                    row,
                )
        conn.commit()


def payees_file(tmp_path: Path, payees: dict[str, tuple[str, str, str]]) -> Path:
    """user -> (cost_rate, currency, account_id), written as the JSON form of payees.yaml."""
    path = tmp_path / "payees.json"
    path.write_text(json.dumps({"payees": [
        {"user_key": user_key(u), "cost_rate": r, "currency": c, "account_id": a, "name": u.upper()}
        for u, (r, c, a) in payees.items()]}), encoding="utf-8")  # fmt: skip
    return path


def items(warehouse) -> dict[tuple[str, str], tuple]:
    """(payee_key, invoice_id) -> (amount_minor, currency, status, external_id, batch_id)."""
    return {(r[0], r[1]): r[2:] for r in warehouse.rows(
        """SELECT payee_key, invoice_id, amount_minor, currency, status, external_id, batch_id
           FROM closeout.payout_items ORDER BY payout_id""")}  # fmt: skip


def check_invariant_6(warehouse, sandbox) -> None:
    """Every payout item is for work on a paid invoice and maps to exactly one transfer, and back."""
    unpaid = warehouse.rows(
        """SELECT p.payout_id, i.status FROM closeout.payout_items p JOIN closeout.invoices i USING (invoice_id)
           WHERE i.status <> 'paid'"""
    )
    assert unpaid == [], unpaid
    transfers: dict[str, list[dict]] = {}
    for t in sandbox.objects("transfer"):
        transfers.setdefault((t.get("metadata") or {}).get("closeout_payout_id"), []).append(t)
    for pid, status, external, amount, currency, batch in warehouse.rows(  # a transfer carries what netting left
        "SELECT payout_id, status, external_id, transfer_minor, currency, batch_id FROM closeout.payout_items"
    ):
        found = transfers.pop(pid, [])
        if status == "transferred":
            assert [t["id"] for t in found] == [external], (pid, found)
            assert (found[0]["amount"], found[0]["currency"], found[0]["transfer_group"]) == (
                amount, currency.lower(), batch)  # fmt: skip
        else:
            assert found == [], (pid, found)
    assert transfers == {}, f"transfers closeout did not plan: {list(transfers)}"


# -- money coming back (refunds, credit notes, disputes) and clawbacks ------------------------------------------
def follow_money(run_id: str = "payouts-cash") -> None:
    """What the events DAG does after Stripe moved money: the events (payment history), then the cash sync
    (refunds, credit notes, disputes as Stripe lists them)."""
    from closeout.payments.cash.tasks import sync_cash

    payment_tasks.collect_events(run_id)
    payment_tasks.apply_events(run_id)
    sync_cash(run_id)


def adjustments(warehouse) -> list[tuple]:
    """(payee_key, invoice_id, kind, reason, amount_minor, cause_id, outstanding_minor, settled_payout_id), in order
    of recording."""
    return warehouse.rows(
        """SELECT payee_key, invoice_id, kind, reason, amount_minor, cause_id, outstanding_minor, settled_payout_id
           FROM closeout.payout_adjustments ORDER BY created_at, adjustment_id"""
    )


def outstanding(warehouse) -> dict[tuple[str, str], int]:
    """(payee_key, currency) -> balance_minor of closeout.outstanding_clawbacks."""
    return {(p, c): b for p, c, b in warehouse.rows(
        "SELECT payee_key, currency, balance_minor FROM closeout.outstanding_clawbacks")}  # fmt: skip


def transfers(sandbox) -> list[tuple[str, str, int]]:
    """(payee_key, invoice_id, amount) of every Stripe transfer, sorted."""
    return sorted((t["metadata"]["closeout_payee"], t["metadata"]["closeout_invoice_id"], t["amount"])
                  for t in sandbox.objects("transfer"))  # fmt: skip


def exceptions_by_work(warehouse) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(payee_key, invoice_id) -> (reason, detail) of the planning exceptions."""
    rows = warehouse.rows(
        "SELECT payee_key, invoice_id, reason, detail FROM closeout.payout_exceptions WHERE kind = reason"
    )
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def check_netting(warehouse) -> None:
    """Every item's netted part is what its settlements say, no transfer is negative, no adjustment is
    over-settled, and an adjustment's outstanding amount keeps its sign."""
    bad = warehouse.rows(
        """SELECT i.payout_id, i.netted_minor, coalesce(-sum(s.amount_minor), 0)
           FROM closeout.payout_items i
           LEFT JOIN closeout.payout_adjustment_settlements s ON s.payout_id = i.payout_id
           GROUP BY i.payout_id, i.netted_minor
           HAVING i.netted_minor <> coalesce(-sum(s.amount_minor), 0) OR min(i.transfer_minor) < 0"""
    )
    assert bad == [], bad
    over = warehouse.rows(
        """SELECT adjustment_id, amount_minor, outstanding_minor FROM closeout.payout_adjustments
           WHERE sign(outstanding_minor) NOT IN (0, sign(amount_minor))"""
    )
    assert over == [], over
