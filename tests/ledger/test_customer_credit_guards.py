"""Migration 0024 widens the journal kind checks to the union with what they held: every kind posted before is
still accepted, the customer credit kinds are, an unknown kind is not, and only the reversal kinds (now with
customer_credit_unapplied) name the journal they reverse."""

from __future__ import annotations

import re

import psycopg
import pytest
from closeout.ledger.posting import STEPS
from closeout.paths import load_sql
from closeout.warehouse.db import connect

pytestmark = pytest.mark.integration

REVERSALS = {"void", "writeoff_reversal", "refund_failure", "dispute_reinstatement", "credit_note_void",
             "stripe_payout_failure", "customer_credit_unapplied"}  # fmt: skip


def _target(conn: psycopg.Connection) -> str:
    """A journal to reverse (in the caller's transaction, never committed: it has no lines)."""
    return conn.execute(
        """INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, occurred_at, description)
           VALUES (closeout_data.journal_id('payment', 'target'), 'payment', 'target', 'USD', now(), 'target')
           RETURNING journal_id"""
    ).fetchone()[0]


def _insert(conn: psycopg.Connection, kind: str, reverses: str | None) -> None:
    conn.execute(
        """INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, occurred_at, description,
               reverses_journal_id)
           VALUES (closeout_data.journal_id(%s, 'guard'), %s, 'guard', 'USD', now(), 'guard', %s)""",
        (kind, kind, reverses),
    )


def test_every_posted_kind_is_accepted_and_only_reversals_name_what_they_reverse(warehouse) -> None:
    # the kinds the posting SQL writes (a step's label is not always its kind: clawbacks post payout_accrual)
    kinds = {k for _, path in STEPS for k in re.findall(r"closeout_data\.journal_id\('([a-z_]+)'", load_sql(path))}
    assert {"customer_balance_credit", "customer_credit_applied", "customer_credit_unapplied"} <= kinds
    for kind in sorted(kinds):
        with connect() as conn:
            target = _target(conn)
            _insert(conn, kind, target if kind in REVERSALS else None)  # accepted (rolled back: it has no lines)
            conn.rollback()
        with connect() as conn, pytest.raises(psycopg.errors.CheckViolation, match="journals_reversal_check"):
            target = _target(conn)
            _insert(conn, kind, None if kind in REVERSALS else target)
    with connect() as conn, pytest.raises(psycopg.errors.CheckViolation, match="journals_kind_check"):
        _insert(conn, "customer_credit_misc", None)
