"""Posting journals: one set-based SQL statement per journal kind (``include/sql/ledger/``), in one transaction.

Each statement selects what the recorded facts call for and no journal records yet, inserts the journals with
ids derived from their business identity (``ON CONFLICT DO NOTHING``) and the lines of exactly the journals it
inserted. So a second run posts nothing, and a run that dies before COMMIT leaves nothing behind: its retry
posts everything once. A transaction-scoped advisory lock serialises concurrent runs; the database checks
every journal balances at COMMIT (a deferred constraint trigger).

The order matters and is fixed: finalisations first (payments only settle a posted receivable), write-off
reversals before the payments that caused them, voids after write-off reversals, write-offs last (of what
remains after this run's payments).

The cash leg (issue 13; docs/ledger.md) follows Stripe's own records (closeout_data.refunds, disputes,
credit_notes, stripe_payouts and their balance transactions, migration 0016): refunds and their failures,
dispute withdrawals and reinstatements, and credit notes and their voids come after payments (they need the
charge's payment or the invoice posted) and before write-offs (a credit note lowers the remainder written off);
Stripe fees, currency conversions (the one kind with lines in two currencies), realised FX and Stripe payouts to
the bank run after everything that books a presentment side, so a conversion finds the journal it converts and
the realisation finds this run's conversions. Per settlement currency the ledger's cash_clearing then equals the
sum of Stripe's balance transactions' net (invariant 7, closeout.ledger_stripe_balance).

Customer credit (migration 0024): a credit closeout put on a customer's Stripe balance for a draft that netted
negative (``customer_balance_credit``), and the customer balance Stripe applied to an invoice at finalisation
(``customer_credit_applied``: customer_credit against receivable, no cash), reversed if the invoice is voided
(``customer_credit_unapplied``). They follow the credit notes (whose credit_amount fills the same balance) and
come before voids and write-offs (an applied credit lowers the remainder written off).

Contractor payouts (``closeout_payouts``): the accrual when a payout item is planned (debit ``contractor_costs``,
credit ``payouts_payable``), then the transfer once closeout recorded Stripe's transfer id (debit
``payouts_payable``, credit ``cash_clearing``: a transfer leaves the Stripe balance, not the bank). They run
after the write-offs: they touch no receivable, and the transfer step needs the accrual posted first. The payouts
DAG posts right after its release; the events DAG's posting picks up anything that run missed.

Expenses (migration 0038, docs/expense-books.md): each expense version is booked once as cost (``expense``:
project_costs or reimbursable_expenses against reimbursements_payable or expense_clearing, the difference to the
previous booking), after the write-offs; a reimbursement paid with a payout (``reimbursement_payment``:
reimbursements_payable into payouts_payable) after the payout transfers it rode on. The invoice journal credits
billed expense lines' cost and markup to their roles (``include/ledger/expenses.yaml``: expense_revenue_mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from closeout.ledger.accounts import Chart
from closeout.paths import load_sql

_LOCK_KEY = 0x6C656467  # "ledg"
# (journal kinds posted by the step, SQL file): in this order
STEPS: tuple[tuple[str, str], ...] = (
    ("invoice", "ledger/10_invoices.sql"),
    ("writeoff_reversal", "ledger/20_writeoff_reversals.sql"),
    ("payment", "ledger/30_payments.sql"),
    ("refund", "ledger/40_refunds.sql"),
    ("refund_failure", "ledger/41_refund_failures.sql"),
    ("dispute", "ledger/42_disputes.sql"),
    ("dispute_reinstatement", "ledger/43_dispute_reinstatements.sql"),
    ("credit_note", "ledger/45_credit_notes.sql"),
    ("credit_note_void", "ledger/46_credit_note_voids.sql"),
    ("customer_balance_credit", "ledger/47_customer_balance_credits.sql"),
    ("customer_credit_applied", "ledger/48_customer_credit_applied.sql"),
    ("customer_credit_unapplied", "ledger/49_customer_credit_unapplied.sql"),
    ("void", "ledger/50_voids.sql"),
    ("writeoff", "ledger/60_writeoffs.sql"),
    ("expense", "ledger/65_expenses.sql"),
    ("payout_accrual", "ledger/70_payout_accruals.sql"),
    ("payout_clawback", "ledger/75_payout_clawbacks.sql"),
    ("payout_transfer", "ledger/80_payout_transfers.sql"),
    ("reimbursement_payment", "ledger/82_reimbursement_payments.sql"),
    ("fee", "ledger/85_fees.sql"),
    ("fx_conversion", "ledger/86_fx_conversions.sql"),
    ("fx_realised", "ledger/87_fx_realised.sql"),
    ("stripe_payout", "ledger/90_stripe_payouts.sql"),
    ("stripe_payout_paid", "ledger/91_stripe_payout_arrivals.sql"),
    ("stripe_payout_failure", "ledger/92_stripe_payout_failures.sql"),
)


@dataclass(frozen=True)
class Posted:
    """What one run posted: journals per kind and lines in all."""

    journals: dict[str, int]
    lines: int

    @property
    def total(self) -> int:
        return sum(self.journals.values())


def post(conn: psycopg.Connection, chart: Chart, ledger_run_id: int | None) -> Posted:
    """Post every journal the recorded facts call for, inside the caller's transaction (the caller commits).

    The lines checked by the deferred balance trigger are judged at the caller's COMMIT; ``SET CONSTRAINTS ALL
    IMMEDIATE`` at the end makes a failure surface here, naming the journal, rather than at COMMIT."""
    from closeout import locks
    from closeout.ledger import expense_policy

    locks.acquire(conn, _LOCK_KEY, name="closeout.ledger_posting", transaction=True)  # bounded, names the holder
    policy = expense_policy.apply(conn)  # who paid each expense, and how billed expense lines are booked
    params = {**chart.codes, "run": ledger_run_id, "expense_revenue_mode": policy.revenue_mode}
    lines = 0
    for _, path in STEPS:
        lines += conn.execute(load_sql(path), params).rowcount
    conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
    rows = conn.execute(
        """SELECT kind, count(*) FROM closeout_data.journals WHERE ledger_run_id IS NOT DISTINCT FROM %s
           GROUP BY kind""",
        (ledger_run_id,),
    ).fetchall()
    return Posted({kind: int(n) for kind, n in rows}, lines)
