"""Helpers for the ledger tests: publish real invoices to the Stripe sandbox, let Stripe's events come back
through closeout's own tasks, post, and read the journals and the two invariant views."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe
from closeout.ledger import tasks as ledger_tasks
from closeout.payments import tasks as payment_tasks
from payments_support import seed_drafts


def sdk(sandbox) -> stripe.StripeClient:
    return stripe.StripeClient(sandbox.secret_key, base_addresses={"api": sandbox.url}, max_network_retries=0)


def publish(warehouse, clients: dict[str, list[Decimal]], **kwargs) -> dict[str, tuple[str, str, int]]:
    """client -> (invoice_id, stripe_invoice_id, total_minor), published and finalized through closeout."""
    ids = seed_drafts(clients, **kwargs)
    payment_tasks.publish_drafts("publish")
    rows = warehouse.rows(
        """SELECT client_key, invoice_id, stripe_invoice_id, total_minor FROM closeout.invoices
           WHERE invoice_id = ANY(%s)""",
        (ids,),
    )
    return {c.removeprefix("harvest:"): (iid, sid, total) for c, iid, sid, total in rows}


def follow(run: str = "ledger-test") -> dict:
    """Stripe's events into closeout (backfill from /v1/events, apply), then post: what the DAG does."""
    payment_tasks.collect_events(run)
    payment_tasks.apply_events(run)
    return ledger_tasks.post_journals(run)


def journals(warehouse, invoice_id: str) -> list[tuple]:
    """(kind, source_ref, reverses_journal_id, journal_id, ((role, debit, credit), ...)) in posting order."""
    out = []
    for jid, kind, source, reverses in warehouse.rows(
        """SELECT journal_id, kind, source_ref, reverses_journal_id FROM closeout.ledger_journals
           WHERE invoice_id = %s ORDER BY posted_at, journal_id""",
        (invoice_id,),
    ):
        lines = tuple(warehouse.rows(
            """SELECT role, debit_minor, credit_minor FROM closeout.ledger_lines WHERE journal_id = %s
               ORDER BY line_no""", (jid,)))  # fmt: skip
        out.append((kind, source, reverses, jid, lines))
    return out


def kinds(warehouse, invoice_id: str) -> list[str]:
    return [j[0] for j in journals(warehouse, invoice_id)]


def receivable(warehouse, client: str) -> int:
    return int(warehouse.scalar(
        """SELECT coalesce(sum(debit_minor - credit_minor), 0) FROM closeout.ledger_lines
           WHERE role = 'receivable' AND client_key = %s""", (f"harvest:{client}",)))  # fmt: skip


def check_invariants(warehouse) -> None:
    """Invariant 4 (every journal balances) and 5 (receivable per client = unpaid remainder of open invoices),
    through the views a GX suite will use."""
    unbalanced = warehouse.rows("SELECT * FROM closeout.journal_balance WHERE NOT balanced")
    assert unbalanced == [], unbalanced
    broken = warehouse.rows("SELECT * FROM closeout.receivable_by_client WHERE NOT holds")
    assert broken == [], broken


@pytest.fixture
def books(warehouse, stripe_sandbox):
    """Three published invoices of last month, one paid in full and one in part, every journal posted (the
    reconciliation tests' books; import it into a test module to use it)."""
    inv = publish(warehouse, {"a": [Decimal("2")], "b": [Decimal("5"), Decimal("1.5")], "c": [Decimal("3")]})
    follow()
    stripe_sandbox.pay_invoice(inv["a"][1])
    stripe_sandbox.pay_invoice(inv["b"][1], 20_000)
    follow()
    return inv


# -- the cash leg (issue 13): Stripe's own records, and the ledger's side of invariant 7 ----------------------------
def follow_cash(run: str = "ledger-cash-test") -> dict:
    """What closeout_stripe_events does since the cash sync: events in and applied, the cash sync (Stripe's
    balance transactions, refunds, disputes, credit notes, payouts), then the journals."""
    from closeout.payments.cash import tasks as cash_tasks

    payment_tasks.collect_events(run)
    payment_tasks.apply_events(run)
    cash_tasks.sync_cash(run)
    return ledger_tasks.post_journals(run)


def stripe_net(warehouse) -> dict[str, int]:
    """Stripe's balance per settlement currency as its balance transactions make it: the sum of net."""
    return {c: int(n) for c, n in warehouse.rows(
        "SELECT currency, sum(net_minor) FROM closeout.stripe_balance_transactions GROUP BY currency")}  # fmt: skip


def ledger_stripe_balance(warehouse) -> dict[str, int]:
    """The ledger's Stripe balance (cash_clearing) per currency, currencies at zero left out."""
    return {c: int(b) for c, b in warehouse.rows(
        "SELECT currency, ledger_balance_minor FROM closeout.ledger_stripe_balance") if b != 0}  # fmt: skip


def role_balance(warehouse, role: str) -> dict[str, int]:
    """debits - credits per currency of one role, currencies at zero left out."""
    return {c: int(b) for c, b in warehouse.rows(
        """SELECT currency, sum(debit_minor - credit_minor) FROM closeout.ledger_lines WHERE role = %s
           GROUP BY currency""", (role,)) if b != 0}  # fmt: skip


def check_cash_invariants(warehouse) -> None:
    """Invariants 4 and 5, plus 7 as the ledger can state it: per settlement currency the ledger's Stripe balance
    equals the sum of Stripe's balance transactions' net, to the minor unit; fees booked equal Stripe's."""
    check_invariants(warehouse)
    assert ledger_stripe_balance(warehouse) == {c: n for c, n in stripe_net(warehouse).items() if n != 0}
    stripe_fees = {c: int(f) for c, f in warehouse.rows(
        """SELECT currency, sum(fee_minor + CASE WHEN type IN ('stripe_fee', 'stripe_fx_fee', 'tax_fee')
                                               THEN -amount_minor ELSE 0 END)
           FROM closeout.stripe_balance_transactions GROUP BY currency""") if f != 0}  # fmt: skip
    booked = {c: int(f) for c, f in warehouse.rows(
        "SELECT currency, fees_minor FROM closeout.ledger_stripe_fees") if f != 0}  # fmt: skip
    assert booked == stripe_fees


def put_cash(table: str, **row) -> None:
    """One row of a cash contract table (closeout_data.<table>, migration 0016) written as the cash sync would
    write it, so the journals can be tested for shapes the sandbox cannot make. Bookkeeping columns default;
    a balance transaction's net is its amount less its fee unless given."""
    from datetime import UTC, datetime

    from closeout.warehouse.db import connect
    from psycopg import sql

    now = datetime.now(UTC)
    row.setdefault("observed_at", now)
    row.setdefault("created_at", now)
    if table == "stripe_balance_transactions":
        row.setdefault("fee_minor", 0)
        row.setdefault("net_minor", row["amount_minor"] - row["fee_minor"])
        row.setdefault("status", "available")
    with connect() as conn:
        conn.execute(
            sql.SQL("INSERT INTO closeout_data.{} ({}) VALUES ({})").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, row)),
                sql.SQL(", ").join(sql.Placeholder() * len(row))),
            list(row.values()),
        )  # fmt: skip
        conn.commit()


def update_cash(table: str, key: str, value: str, **changes) -> None:
    """A newer state of one cash contract row (a refund failed, a dispute won, a payout paid ...)."""
    from closeout.warehouse.db import connect
    from psycopg import sql

    with connect() as conn:
        conn.execute(
            sql.SQL("UPDATE closeout_data.{} SET {} WHERE {} = %s").format(
                sql.Identifier(table),
                sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in changes),
                sql.Identifier(key)),
            [*changes.values(), value],
        )  # fmt: skip
        conn.commit()


def charge_of(warehouse, invoice_id: str) -> str:
    """The Stripe charge of an invoice's (first) payment, as closeout recorded it from the payment event."""
    return warehouse.scalar(
        """SELECT charge_id FROM closeout.invoice_payments WHERE invoice_id = %s AND kind = 'payment'
           ORDER BY occurred_at LIMIT 1""", (invoice_id,))  # fmt: skip


def lines_of(warehouse, kind: str, source_ref: str) -> tuple:
    """((currency, role, debit, credit), ...) of one journal, by line number."""
    return tuple(warehouse.rows(
        """SELECT currency, role, debit_minor, credit_minor FROM closeout.ledger_lines
           WHERE kind = %s AND source_ref = %s ORDER BY line_no""", (kind, source_ref)))  # fmt: skip
