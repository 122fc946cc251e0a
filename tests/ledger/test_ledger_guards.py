"""What the database itself refuses: an unbalanced journal, a line both debit and credit, an edit or deletion
of anything posted. And posting's all-or-nothing: a run that dies before COMMIT leaves nothing, its retry posts
everything once. Plus: Stripe fees come only from Stripe's balance transactions."""

from __future__ import annotations

from decimal import Decimal as D

import psycopg
import pytest
from closeout.ledger import accounts, posting
from closeout.ledger import tasks as ledger_tasks
from closeout.warehouse.db import connect
from ledger_support import check_cash_invariants, check_invariants, follow, follow_cash, publish

pytestmark = pytest.mark.integration


def _journal(conn: psycopg.Connection, source: str, *lines: tuple[int, int]) -> str:
    accounts.mirror(conn, accounts.read())
    (jid,) = conn.execute(
        """INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, occurred_at, description)
           VALUES (closeout_data.journal_id('payment', %s), 'payment', %s, 'USD', now(), 'by hand')
           RETURNING journal_id""",
        (source, source),
    ).fetchone()
    for n, (debit, credit) in enumerate(lines, 1):
        conn.execute(
            """INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code,
                   debit_minor, credit_minor) VALUES (%s, %s, 'USD', 'cash_clearing', '1150', %s, %s)""",
            (jid, n, debit, credit),
        )
    return jid


def test_the_database_refuses_an_unbalanced_journal_at_commit(warehouse) -> None:
    with connect() as conn:
        _journal(conn, "by-hand-1", (1000, 0), (0, 999))  # accepted line by line: the check is deferred
        with pytest.raises(psycopg.errors.CheckViolation, match="does not balance in USD: debits 1000, credits 999"):
            conn.commit()
    with connect() as conn:
        _journal(conn, "by-hand-2", (1000, 0))
        with pytest.raises(psycopg.errors.CheckViolation, match="1 lines"):
            conn.commit()
    with connect() as conn, pytest.raises(psycopg.errors.CheckViolation, match="journal_lines_check"):
        _journal(conn, "by-hand-3", (1000, 1000), (0, 0))
    with connect() as conn:
        _journal(conn, "by-hand-4", (1000, 0), (0, 1000))
        conn.commit()
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_journals") == 1


def test_posted_journals_and_lines_cannot_be_edited_or_deleted(warehouse) -> None:
    with connect() as conn:
        jid = _journal(conn, "by-hand", (500, 0), (0, 500))
        conn.commit()
    statements = [
        ("UPDATE closeout_data.journal_lines SET debit_minor = 600 WHERE journal_id = %s AND line_no = 1", "UPDATE"),
        ("DELETE FROM closeout_data.journal_lines WHERE journal_id = %s", "DELETE"),
        ("UPDATE closeout_data.journals SET description = 'changed' WHERE journal_id = %s", "UPDATE"),
        ("DELETE FROM closeout_data.journals WHERE journal_id = %s", "DELETE"),
    ]
    for sql, op in statements:
        with connect() as conn, pytest.raises(psycopg.errors.RaiseException, match=f"{op} on closeout_data.journal"):
            conn.execute(sql, (jid,))
    with connect() as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("TRUNCATE closeout_data.journal_lines")
    assert warehouse.rows("SELECT debit_minor, credit_minor FROM closeout.ledger_lines ORDER BY line_no") == [
        (500, 0),
        (0, 500),
    ]


def test_a_run_that_dies_before_commit_leaves_nothing_and_its_retry_posts_once(warehouse, stripe_sandbox) -> None:
    inv = publish(warehouse, {"a": [D("2")], "b": [D("1")]})
    stripe_sandbox.pay_invoice(inv["a"][1])
    follow()  # events in, and posted once
    expected = warehouse.rows("SELECT journal_id, line_no, debit_minor, credit_minor FROM closeout.ledger_lines")
    assert len(expected) == 6

    stripe_sandbox.pay_invoice(inv["b"][1])
    from closeout.payments import tasks as payment_tasks

    payment_tasks.collect_events("t")
    payment_tasks.apply_events("t")
    conn = connect()
    posted = posting.post(conn, accounts.read(), None)  # the worker dies here: no COMMIT
    assert posted.total == 1 and posted.lines == 2
    conn.close()
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines") == 6, "nothing survived the crash"

    assert ledger_tasks.post_journals("retry")["journals"] == 1
    assert ledger_tasks.post_journals("retry-2")["journals"] == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines") == 8
    assert warehouse.scalar("SELECT count(DISTINCT (kind, source_ref)) FROM closeout.ledger_journals") == 4
    check_invariants(warehouse)


def test_journal_ids_follow_from_kind_and_source(warehouse, stripe_sandbox) -> None:
    inv = publish(warehouse, {"a": [D("2")]})
    follow()
    jid = warehouse.scalar("SELECT journal_id FROM closeout.ledger_journals WHERE kind = 'invoice'")
    assert jid == warehouse.scalar("SELECT closeout_data.journal_id('invoice', %s)", (inv["a"][0],))


def test_stripe_fees_come_from_stripes_balance_transactions_only(warehouse, stripe_sandbox) -> None:
    """Fees are never derived: while closeout has not read Stripe's balance transactions (no cash sync yet)
    nothing posts to processor_fees, however many payments are booked; once it has, the fees booked are
    exactly the fees Stripe reports (since issue 13; before it this test asserted no fee was ever posted)."""
    inv = publish(warehouse, {"a": [D("2")]})
    stripe_sandbox.pay_invoice(inv["a"][1])
    follow()
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_journals WHERE kind = 'payment'") == 1
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines WHERE role = 'processor_fees'") == 0
    follow_cash()
    fee = warehouse.scalar("SELECT sum(fee_minor) FROM closeout.stripe_balance_transactions")
    assert fee > 0
    assert warehouse.rows("SELECT debit_minor, credit_minor FROM closeout.ledger_lines WHERE role = 'processor_fees'"
                          ) == [(fee, 0)]  # fmt: skip
    check_cash_invariants(warehouse)
    reserved = ["tax_payable"]
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines WHERE role = ANY(%s)", (reserved,)) == 0
