"""Planning: payout items for work on paid invoices, grouped into bounded batches with deterministic ids.

An item is one payee's work on one paid invoice, in the payee's currency (unique per payee, invoice and
currency: the same work is never planned twice). Its amount is the hours of the invoice's current entry
rows times the payee's cost rate, rounded once, half-up, to the currency's minor unit. Its id, its
idempotency key and its transfer request are fixed here, from its identity, and never change.

Batches: the items planned in one run, ordered by payout id, cut into groups of at most ``batch_size``
(hard cap 15,000); a batch id is a hash of its items' ids, so the same items make the same batches.

Payouts follow the money back (invariant 8): whether work is payable is decided on every plan from the invoice's
current state (refunds, credit notes, disputes: ``payouts/11_causes_events.sql`` or, with the cash tables,
``payouts/12_causes_cash.sql``). Work held by an open dispute, or on an invoice refunded, credited or lost so far
that nothing is payable, is an exception, not an item. Work already planned on an invoice that then gives money
back is clawed back (``payouts/40_clawbacks.sql``; a cause that goes away is reversed, ``35_reversals.sql``),
and the payee's new items net what is outstanding (``closeout.payouts.netting``): each item's transfer request
carries its amount less what was netted, fixed here like the rest of the request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from closeout.paths import load_sql
from closeout.payments.keys import _bounded
from closeout.payments.publish import STRIPE_THREE_DECIMAL, STRIPE_ZERO_DECIMAL
from closeout.payouts import config, netting

DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 15_000


@dataclass
class PlanSummary:
    payees: int = 0
    work_rows: int = 0
    items_planned: int = 0
    batches_planned: list[str] = field(default_factory=list)
    awaiting_approval: list[str] = field(default_factory=list)
    exceptions: dict[str, int] = field(default_factory=dict)
    clawbacks_recorded: int = 0
    reversals_recorded: int = 0
    clawed_back_minor: dict[str, int] = field(default_factory=dict)
    netted_minor: dict[str, int] = field(default_factory=dict)
    items_netted: int = 0
    outstanding_clawbacks: list[dict[str, Any]] = field(default_factory=list)
    reimbursements_recorded: int = 0
    unpaid_reimbursements: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def payout_id(payee_key: str, invoice_id: str, currency: str) -> str:
    return "po_" + hashlib.sha256(f"{payee_key}|{invoice_id}|{currency}".encode()).hexdigest()[:24]


def batch_id(payout_ids: list[str]) -> str:
    return "pb_" + hashlib.sha256(",".join(sorted(payout_ids)).encode()).hexdigest()[:24]


def transfer_key(prefix: str, pid: str) -> str:
    return _bounded(f"{prefix}/payout/{pid}/transfer")


def bounded_size(batch_size: int | None) -> int:
    size = int(batch_size or DEFAULT_BATCH_SIZE)
    if size < 1:
        raise ValueError("batch_size must be at least 1")
    return min(size, MAX_BATCH_SIZE)


def plan(
    conn: psycopg.Connection,
    *,
    key_prefix: str,
    batch_size: int | None = None,
    payees: list[config.Payee] | None = None,
    planned_by: str | None = None,
) -> PlanSummary:
    """Mirror the payees, plan new items into batches, refresh the exceptions. One transaction, committed."""
    size = bounded_size(batch_size)
    summary = PlanSummary()
    payees = config.load() if payees is None else payees
    from closeout.pilot import config as pilot_config  # the cohort the decisions read (docs/pilot.md)

    pilot_config.load_and_apply(conn)
    with conn.transaction():
        from closeout import locks

        locks.acquire(conn, locks.lock_key(conn, "closeout_payouts_plan"), name="closeout_payouts_plan",
                      transaction=True)  # fmt: skip
        summary.payees = config.mirror(conn, payees)
        _temp_tables(conn)
        summary.work_rows = conn.execute(load_sql("payouts/10_work.sql")).rowcount
        causes = "payouts/12_causes_cash.sql" if _cash_installed(conn) else "payouts/11_causes_events.sql"
        conn.execute(load_sql(causes))
        # temporary tables have no statistics until analysed: without them the planner took the handful of causes
        # for many rows and met every payout item with every cause (16 s at 100k items); ANALYZE costs ms
        conn.execute("ANALYZE payout_work, payout_causes")
        conn.execute(load_sql("payouts/13_invoice_state.sql"))
        conn.execute(load_sql("payouts/15_decisions.sql"), {
            "stripe_zero_decimal": sorted(STRIPE_ZERO_DECIMAL), "stripe_three_decimal": sorted(STRIPE_THREE_DECIMAL)})
        rows = conn.execute(load_sql("payouts/20_new_items.sql")).fetchall()
        items = []
        for invoice_id, payee_key, currency, hours, rate, entries, account, amount in rows:
            pid = payout_id(payee_key, invoice_id, currency)
            items.append((pid, invoice_id, payee_key, currency, hours, rate, entries, account, amount))
        items.sort(key=lambda i: i[0])
        new = [netting.NewItem(i[0], i[2], i[3], int(i[8])) for i in items]
        with conn.cursor() as cur, cur.copy(
            "COPY payout_new (payout_id, payee_key, invoice_id, currency, amount_minor) FROM STDIN"
        ) as copy:
            for n, i in zip(new, items, strict=True):
                copy.write_row((n.payout_id, n.payee_key, i[1], n.currency, n.amount_minor))
        conn.execute("ANALYZE payout_invoice_state, payout_decisions, payout_new")
        by = {"planned_by": planned_by}
        summary.reversals_recorded = conn.execute(load_sql("payouts/35_reversals.sql"), by).rowcount
        summary.clawbacks_recorded = conn.execute(load_sql("payouts/40_clawbacks.sql"), by).rowcount
        # expenses people paid, owed to them with this payout (docs/expense-books.md); netted below like the rest
        summary.reimbursements_recorded = conn.execute(load_sql("payouts/38_reimbursements.sql"), by).rowcount
        netted = netting.allocate(netting.outstanding(conn), new)
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            bid = batch_id([i[0] for i in chunk])
            conn.execute(
                """INSERT INTO closeout_data.payout_batches (batch_id, planned_by, item_count, size_limit)
                   VALUES (%s, %s, %s, %s)""",
                (bid, planned_by, len(chunk), size),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO closeout_data.payout_items (payout_id, batch_id, payee_key, invoice_id, currency,
                           hours, cost_rate, amount_minor, entry_count, destination, idempotency_key, request,
                           netted_minor, status)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                    [
                        (pid, bid, payee, inv, cur_, hours, rate, amount, entries, account,
                         transfer_key(key_prefix, pid),
                         Jsonb(_request(pid, bid, payee, inv, cur_, amount - netted.netted.get(pid, 0), account)),
                         netted.netted.get(pid, 0),
                         "netted" if netted.netted.get(pid, 0) == amount else "pending")
                        for pid, inv, payee, cur_, hours, rate, entries, account, amount in chunk
                    ],
                )  # fmt: skip
            summary.batches_planned.append(bid)
            summary.items_planned += len(chunk)
        netting.record(conn, netted, planned_by)
        summary.netted_minor = netted.netted_by_currency(new)
        summary.items_netted = sum(1 for n in new if netted.netted.get(n.payout_id) == n.amount_minor)
        conn.execute(load_sql("payouts/30_exceptions.sql"))
        # Two statements, not one with "NOT EXISTS ... OR EXISTS": an OR of sublinks cannot become a join, so
        # Postgres ran both per exception row against the unindexed work table (minutes at 500k exceptions).
        conn.execute(
            """DELETE FROM closeout_data.payout_exceptions x
               WHERE NOT EXISTS (SELECT 1 FROM payout_decisions d
                                 WHERE d.invoice_id = x.invoice_id AND d.payee_key = x.payee_key
                                   AND d.verdict = x.reason)"""
        )
        conn.execute(
            """DELETE FROM closeout_data.payout_exceptions x USING closeout_data.payout_items i
               WHERE i.invoice_id = x.invoice_id AND i.payee_key = x.payee_key"""
        )
        summary.exceptions = dict(
            conn.execute("SELECT reason, count(*) FROM closeout_data.payout_exceptions GROUP BY reason").fetchall()
        )
        summary.awaiting_approval = awaiting_approval(conn)
        summary.clawed_back_minor = dict(
            conn.execute(
                """SELECT currency, -sum(amount_minor)::bigint FROM closeout_data.payout_adjustments
                   WHERE kind = 'clawback' AND planned_by IS NOT DISTINCT FROM %s
                     AND created_at >= transaction_timestamp() GROUP BY currency""",
                (planned_by,),
            ).fetchall()
        )
        summary.outstanding_clawbacks = outstanding_clawbacks(conn)
        summary.unpaid_reimbursements = unpaid_reimbursements(conn)
    return summary


def unpaid_reimbursements(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Reimbursements owed to people without payout setup in the expense's currency (reported, never dropped)."""
    return [
        {"person": person, "currency": currency, "amount_minor": int(amount), "amount": f"{major} {currency}",
         "expense_count": int(n), "expenses": expenses, "reason": reason}
        for person, currency, amount, major, n, expenses, reason in conn.execute(
            """SELECT u.person, u.currency, u.amount_minor,
                      round(u.amount_minor::numeric / (10::numeric ^ c.exponent), c.exponent)::text,
                      u.expense_count, u.expenses, u.reason
               FROM closeout.unpaid_reimbursements u JOIN closeout_data.currencies c ON c.code = u.currency
               ORDER BY u.person, u.currency"""
        ).fetchall()
    ]  # fmt: skip


def outstanding_clawbacks(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Per payee and currency, what is still to be netted (balance < 0: the payee owes it back) or paid."""
    return [
        {"payee_key": payee, "currency": currency, "balance_minor": int(balance), "balance": f"{major} {currency}",
         "adjustments": int(n), "source_refs": refs}
        for payee, currency, balance, major, n, refs in conn.execute(
            """SELECT o.payee_key, o.currency, o.balance_minor,
                      round(o.balance_minor::numeric / (10::numeric ^ c.exponent), c.exponent)::text,
                      o.adjustments, o.source_refs
               FROM closeout.outstanding_clawbacks o JOIN closeout_data.currencies c ON c.code = o.currency
               ORDER BY o.payee_key, o.currency"""
        ).fetchall()
    ]  # fmt: skip


def _cash_installed(conn: psycopg.Connection) -> bool:
    """The cash tables of migration 0016 are there: refunds, credit notes and disputes as Stripe has them."""
    (ok,) = conn.execute(
        """SELECT to_regclass('closeout_data.refunds') IS NOT NULL AND to_regclass('closeout_data.credit_notes')
                  IS NOT NULL AND to_regclass('closeout_data.disputes') IS NOT NULL
                  AND to_regclass('closeout_data.stripe_charges') IS NOT NULL"""
    ).fetchone()
    return bool(ok)


def _temp_tables(conn: psycopg.Connection) -> None:
    """The plan's working sets, dropped at its commit."""
    for ddl in (
        "payout_work (invoice_id text, payee_key text, hours numeric, entry_count integer)",
        """payout_causes (invoice_id text, cause_kind text, cause_id text, amount_minor bigint,
               created_at timestamptz, effect text, status text)""",
        """payout_invoice_state (invoice_id text PRIMARY KEY, total_minor bigint, reduced_minor bigint,
               held boolean, detail text)""",
        """payout_decisions (invoice_id text, payee_key text, currency text, hours numeric, cost_rate numeric,
               entry_count integer, account_id text, amount_minor bigint, payable_minor bigint, verdict text,
               detail text)""",
        "payout_new (payout_id text PRIMARY KEY, payee_key text, invoice_id text, currency text, amount_minor bigint)",
    ):
        conn.execute(f"CREATE TEMP TABLE {ddl} ON COMMIT DROP")


def awaiting_approval(conn: psycopg.Connection) -> list[str]:
    """Batches not yet approved that still have items to release."""
    return [
        b
        for (b,) in conn.execute(
            """SELECT b.batch_id FROM closeout_data.payout_batches b
               WHERE b.approved_at IS NULL
                 AND EXISTS (SELECT 1 FROM closeout_data.payout_items i
                             WHERE i.batch_id = b.batch_id AND i.status = 'pending')
               ORDER BY b.batch_id"""
        ).fetchall()
    ]


def _request(pid: str, bid: str, payee: str, invoice_id: str, currency: str, amount: int, account: str) -> dict:
    """The transfer as it will be sent, every time: same key, same parameters."""
    return {
        "amount": int(amount),
        "currency": currency.lower(),
        "destination": account,
        "transfer_group": bid,
        "description": f"closeout payout {pid}: {payee} for invoice {invoice_id}",
        "metadata": {
            "closeout_payout_id": pid,
            "closeout_batch_id": bid,
            "closeout_invoice_id": invoice_id,
            "closeout_payee": payee,
        },
    }
