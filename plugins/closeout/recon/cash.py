"""The four cash checks against Stripe itself, on their own (issue 13 item 5): for the benchmark that times them
over a million balance transactions, and for anyone who wants Stripe's side judged without the rest of the chain.

``run_cash_checks`` is ``run_reconciliation`` over the subset: the same SQL, GX suites, evidence and recording as
inside ``closeout_reconcile`` (which runs them with every other check). Without invoices_to_stripe in the run,
stripe_objects reports an invoice total that differs itself (inside the full run it leaves that to
invoices_to_stripe).
"""

from __future__ import annotations

from typing import Any

import psycopg

from closeout.recon.checks import CASH_CHECKS, CHECKS, Check
from closeout.recon.runner import ReconResult, run_reconciliation


def cash_checks() -> tuple[Check, ...]:
    """stripe_objects, stripe_balance, stripe_fees, stripe_payouts, in the order the full run has them."""
    return tuple(c for c in CHECKS if c.name in CASH_CHECKS)


def run_cash_checks(conn: psycopg.Connection, period: str | None = None, **kwargs: Any) -> ReconResult:
    """Run and record the cash checks only; ``kwargs`` as ``run_reconciliation`` (cut-offs, tolerance_overrides,
    data_docs_dir ...). ``result.timings["checks"][name]["sql_seconds"]`` is each check's SQL time."""
    return run_reconciliation(conn, period=period, checks=cash_checks(), **kwargs)
