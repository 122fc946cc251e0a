"""What the demo prints between its steps: counts and amounts read back from the public ``closeout.*`` views,
amounts in major units (integer minor units scaled by the currency's exponent, never through a float)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from demo.runtime import say


def rows(query: str, params: Any = None) -> list[tuple]:
    from closeout.warehouse.db import connect

    with connect() as conn:
        return conn.execute(query, params).fetchall()


def money(minor: int | None, exponent: int) -> str:
    return "-" if minor is None else f"{Decimal(int(minor)).scaleb(-exponent):,.{exponent}f}"


def major(minor: int, currency: str) -> str:
    """``41250`` USD -> ``412.50 USD``, with the exponent the warehouse holds for the currency."""
    [(exponent,)] = rows("SELECT exponent FROM closeout_data.currencies WHERE code = %s", (currency,))
    return f"{money(minor, exponent)} {currency}"


def table(header: tuple[str, ...], body: list[tuple], widths: tuple[int, ...]) -> None:
    """Right-aligned columns but the first."""
    def line(cells: tuple) -> str:
        first, *rest = (str(c) for c in cells)
        return f"{first:<{widths[0]}}" + "".join(f" {c:>{w}}" for c, w in zip(rest, widths[1:], strict=True))

    say(line(header))
    for row in body:
        say(line(row))


def capture() -> None:
    runs = rows("""SELECT source, count(*), sum(requests), sum(records), bool_and(status = 'succeeded')
                   FROM closeout.sync_runs GROUP BY source ORDER BY source""")  # fmt: skip
    entries = dict(rows("""SELECT source, count(*) FILTER (WHERE deleted_at IS NULL) FROM closeout.time_entries
                           GROUP BY source"""))  # fmt: skip
    table(("tracker", "runs", "requests", "records", "entries", "ok"),
          [(s, n, req, rec, entries.get(s, 0), "yes" if ok else "NO") for s, n, req, rec, ok in runs],
          (10, 5, 9, 9, 9, 4))  # fmt: skip
    quarantined = rows("SELECT count(*) FROM closeout.quarantine WHERE resolved_at IS NULL")[0][0]
    if quarantined:
        say(f"{quarantined} records quarantined with their reasons (closeout.quarantine)")


def invoices(period_start) -> None:
    """Per currency: invoices of the period by status, total billed, paid, outstanding."""
    body = []
    for cur, exp, n, by_status, total, paid in rows(
        """SELECT i.currency, c.exponent, count(*),
                  string_agg(DISTINCT i.status, ', '),
                  sum(i.total_minor), sum(i.amount_paid_minor)
           FROM closeout.invoices i JOIN closeout_data.currencies c ON c.code = i.currency
           WHERE i.period_start = %s AND i.status <> 'void'
           GROUP BY i.currency, c.exponent ORDER BY i.currency""",
        (period_start,),
    ):
        body.append((cur, n, by_status, money(total, exp), money(paid, exp), money(total - paid, exp)))
    table(("currency", "invoices", "status", "billed", "paid", "outstanding"), body, (8, 8, 22, 16, 16, 16))


def statuses(period_start) -> str:
    got = rows("""SELECT status, count(*) FROM closeout.invoices WHERE period_start = %s
                  GROUP BY status ORDER BY status""", (period_start,))  # fmt: skip
    return ", ".join(f"{n} {s}" for s, n in got) or "none"


def ledger() -> None:
    (journals, unbalanced) = rows("""SELECT count(*), count(*) FILTER (WHERE NOT balanced)
                                     FROM closeout.journal_balance""")[0]  # fmt: skip
    (clients, off) = rows("SELECT count(*), count(*) FILTER (WHERE NOT holds) FROM closeout.receivable_by_client")[0]
    say(f"{journals} journal balances checked, {unbalanced} unbalanced; receivable = unpaid remainder for "
        f"{clients - off} of {clients} client/currency pairs (closeout.journal_balance, closeout.receivable_by_client)")


def recon(airflow_run_id: str | None = None) -> list[tuple]:
    """The latest reconciliation's verdicts, one line per status."""
    checks = rows(
        """SELECT c.check_name, c.status, c.observed FROM closeout.recon_checks c
           WHERE c.run_id = (SELECT run_id FROM closeout.recon_runs ORDER BY finished_at DESC NULLS LAST LIMIT 1)
           ORDER BY c.check_name"""
    )
    by_status: dict[str, list[str]] = {}
    for name, status, _ in checks:
        by_status.setdefault(status, []).append(name)
    for status, names in sorted(by_status.items()):
        say(f"{status:<15} {', '.join(names)}")
    return checks


def payouts() -> None:
    body = []
    for cur, exp, batches, items, transferred, amount in rows(
        """SELECT p.currency, c.exponent, count(DISTINCT p.batch_id), count(*),
                  count(*) FILTER (WHERE p.status = 'transferred'),
                  sum(p.amount_minor) FILTER (WHERE p.status = 'transferred')
           FROM closeout.payout_items p JOIN closeout_data.currencies c ON c.code = p.currency
           GROUP BY p.currency, c.exponent ORDER BY p.currency"""
    ):
        body.append((cur, batches, items, transferred, money(amount, exp)))
    table(("currency", "batches", "items", "transferred", "amount"), body, (8, 8, 6, 12, 14))
    unpaid = rows("""SELECT count(DISTINCT payee_key), sum(hours) FROM closeout.payout_exceptions
                     WHERE reason = 'no_payee_config'""")[0]  # fmt: skip
    if unpaid[0]:
        say(f"not paid, reported instead: {unpaid[1]:.2f} hours of {unpaid[0]} users with no payee configuration "
            "(closeout.payout_exceptions)")
