"""The close report's figures, read from the public ``closeout.*`` views only (the contract finance and auditors
query themselves), so every number on the page can be re-derived with a query anyone can run.

Money stays integer minor units with the currency's exponent beside it (closeout_data.currencies); hours stay
``Decimal``. Tie-outs are computed from separately summed columns and reported as they come out, never
asserted: a report that does not tie out says so, by how much, and where.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from closeout.billing import periods
from closeout.paths import load_sql

MONEY_FIELDS = (
    "time_billed", "expenses", "adjustments", "billed", "paid", "outstanding", "written_off", "refunded", "drafted",
)  # fmt: skip
# optional relations other stages add; shown when present (found by to_regclass, never assumed)
PERIOD_STATE_VIEWS = ("closeout.period_locks", "closeout.period_closes")


class ReportError(ValueError):
    """A report asked for with bad input (a malformed period, a step summary without its name)."""


def parse_period(period: str) -> tuple[date, date]:
    """First and last day of a ``YYYY-MM`` period (closeout.billing.periods decides what a period is)."""
    try:
        parsed = periods.parse_period(period)
    except periods.PeriodError as exc:
        raise ReportError(f"period {period!r}: expected YYYY-MM, for example 2026-10") from exc
    return parsed.start, parsed.end


def previous_periods(period: str, count: int) -> list[str]:
    """``count`` periods ending with ``period``, oldest first."""
    start, _ = parse_period(period)
    out = []
    year, month = start.year, start.month
    for _ in range(max(count, 1)):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


@dataclass(frozen=True)
class ClientFigures:
    """One client in one currency for the period. Money in minor units of ``currency``."""

    client_key: str
    client_name: str
    currency: str
    exponent: int
    hours: Decimal
    billable_hours: Decimal
    entry_count: int
    invoices: int
    time_billed_minor: int
    adjustments_minor: int
    adjustment_lines: int
    billed_minor: int
    lines_minor: int
    paid_minor: int
    outstanding_minor: int
    written_off_minor: int
    refunded_minor: int
    drafts: int
    drafted_minor: int
    payment_exceptions: int
    billing_exceptions: int
    quarantined: int
    # billed expenses (kind 'expense' lines) apart from adjustments; defaulted so older callers still build rows
    expenses_minor: int = 0

    @property
    def exceptions(self) -> int:
        return self.payment_exceptions + self.billing_exceptions + self.quarantined


@dataclass(frozen=True)
class TieOut:
    """One arithmetic check on a currency's totals: ``left`` (the formula) against ``right`` (a separate sum)."""

    currency: str
    exponent: int
    name: str
    formula: str
    left_minor: int
    right_minor: int

    @property
    def difference_minor(self) -> int:
        return self.left_minor - self.right_minor

    @property
    def ties_out(self) -> bool:
        return self.difference_minor == 0


@dataclass(frozen=True)
class CurrencyTotals:
    currency: str
    exponent: int
    clients: int
    hours: Decimal
    billable_hours: Decimal
    entry_count: int
    invoices: int
    time_billed_minor: int
    adjustments_minor: int
    adjustment_lines: int
    billed_minor: int
    lines_minor: int
    paid_minor: int
    outstanding_minor: int
    written_off_minor: int
    refunded_minor: int
    drafts: int
    drafted_minor: int
    payment_exceptions: int
    billing_exceptions: int
    quarantined: int
    tie_outs: tuple[TieOut, ...] = ()
    expenses_minor: int = 0

    @property
    def exceptions(self) -> int:
        return self.payment_exceptions + self.billing_exceptions + self.quarantined

    @property
    def ties_out(self) -> bool:
        return all(t.ties_out for t in self.tie_outs)


@dataclass(frozen=True)
class CashCurrency:
    """One settlement currency's month in Stripe's balance, from Stripe's own balance transactions, and the ledger's
    Stripe balance at the same moment (``as_of``: the month's end, or where Stripe's list was last completely
    read). Money in minor units; refunds, disputes, fees and paid out as the money that left the balance."""

    currency: str
    exponent: int
    opening_minor: int
    gross_minor: int
    fees_minor: int
    refunds_minor: int
    disputes_minor: int
    other_minor: int
    net_minor: int
    paid_out_minor: int
    closing_minor: int
    ledger_closing_minor: int
    transactions: int
    payouts: int
    payouts_in_transit: int
    as_of: datetime | None
    stripe_reported_minor: int | None = None  # Stripe's own GET /v1/balance (available + pending), when read
    stripe_reported_at: datetime | None = None

    @property
    def tie_outs(self) -> tuple[TieOut, ...]:
        c, e = self.currency, self.exponent
        return (
            TieOut(c, e, "the month's movements make its net", "gross - fees - refunds - disputes + other = net",
                   self.gross_minor - self.fees_minor - self.refunds_minor - self.disputes_minor + self.other_minor,
                   self.net_minor),
            TieOut(c, e, "Stripe balance: opening to closing", "opening + net - paid out = closing",
                   self.opening_minor + self.net_minor - self.paid_out_minor, self.closing_minor),
            TieOut(c, e, "the ledger's Stripe balance is Stripe's", "ledger Stripe balance (cash_clearing) = closing",
                   self.ledger_closing_minor, self.closing_minor),
        )  # fmt: skip

    @property
    def ties_out(self) -> bool:
        return all(t.ties_out for t in self.tie_outs)


@dataclass(frozen=True)
class ClientCollections:
    """Collected against billed for one client's invoices of the period, in the invoice currency."""

    client_key: str
    client_name: str
    currency: str
    exponent: int
    invoices: int
    billed_minor: int
    credited_minor: int
    collected_minor: int
    refunded_minor: int
    disputed_minor: int
    net_collected_minor: int

    @property
    def uncollected_minor(self) -> int:
        """Billed less credited less what was collected and kept."""
        return self.billed_minor - self.credited_minor - self.net_collected_minor


@dataclass(frozen=True)
class CloseReport:
    """Everything the page, the CSV and the JSON show, gathered once. ``generated_at`` is the only
    time-dependent field: the same data with the same ``generated_at`` gives the same bytes."""

    period: str
    period_start: date
    period_end: date
    dry_run: bool
    close_run_id: str | None
    generated_at: str
    clients: tuple[ClientFigures, ...]
    totals: tuple[CurrencyTotals, ...]
    invoices: tuple[dict[str, Any], ...]
    adjustments: tuple[dict[str, Any], ...]
    exceptions: tuple[dict[str, Any], ...]
    recon: dict[str, Any] | None
    recon_history: tuple[dict[str, Any], ...]
    payouts: dict[str, Any]
    steps: tuple[dict[str, Any], ...]
    period_state: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    earlier_open: tuple[dict[str, Any], ...] = ()
    cash: tuple[CashCurrency, ...] = ()
    collections: tuple[ClientCollections, ...] = ()
    cash_listed: bool = False  # Stripe's balance transactions have been read from Stripe's list: the cash section
    dead_links: tuple[dict[str, Any], ...] = ()  # owed invoices whose customer holds an expired payment link
    # files this close wrote to the artifact store (export, a dry run's Data Docs): label and *location*; the page
    # links them through closeout.artifacts (presigned or public), the JSON keeps the location
    artifacts: tuple[dict[str, str], ...] = ()
    # the margin view per client (closeout.summary.month): approved time's value, cost, expenses, margin per currency
    margins: Any = None
    margin_names: dict[str, str] = field(default_factory=dict)

    @property
    def ties_out(self) -> bool:
        return all(t.ties_out for t in self.totals) and all(c.ties_out for c in self.cash)

    @property
    def client_names(self) -> dict[str, str]:
        """Client key -> name (billing configuration, else tracker), for every list on the page that names a client
        by its key: the name is shown beside it."""
        return {c.client_key: c.client_name for c in (*self.clients, *self.collections) if c.client_name}

    @property
    def failed_checks(self) -> list[str]:
        """Checks of the period's latest reconciliation run that failed or could not run."""
        return [c["check_name"] for c in (self.recon or {}).get("checks", []) if c["status"] in ("failed", "error")]

    @property
    def open_holds(self) -> list[dict[str, Any]]:
        return [h for h in self.payouts.get("holds", []) if h.get("released_at") is None]

    @property
    def headline(self) -> tuple[bool, list[str]]:
        """(good, sentences): the page's verdict, reflecting everything on it, worst first. An open payout hold or
        a failed check is the headline, never "every currency ties out" above it; a figure that does not tie out,
        or no reconciliation for the period, is said too. Good only when nothing is wrong."""
        problems: list[str] = []
        holds = self.open_holds
        if holds:
            checks = sorted({h.get("check_name") or "?" for h in holds})
            problems.append(f"Payouts are on hold: {len(holds)} open payout hold(s) ({', '.join(checks)}); no payout "
                            "is released until finance releases them.")  # fmt: skip
        failed = self.failed_checks
        if failed:
            problems.append(f"Reconciliation failed: {', '.join(failed)}.")
        if not self.ties_out:
            what = [t.currency for t in self.totals if not t.ties_out]
            cash = [c.currency for c in self.cash if not c.ties_out]
            parts = ([f"billing in {', '.join(what)}"] if what else []) + (
                [f"Stripe cash in {', '.join(cash)}"] if cash else [])  # fmt: skip
            problems.append(f"Does not tie out: {'; '.join(parts)} (see the checks below).")
        if self.recon is None:
            problems.append(f"Not reconciled: no finished reconciliation run for {self.period}.")
        if not self.totals and not self.cash:
            problems.append("No time, invoices or exceptions recorded for this period.")
        if problems:
            return False, problems
        return True, ["Every currency ties out" + (", Stripe's balance included" if self.cash else "")
                      + ", every check is green and no payout is on hold."]  # fmt: skip


def _rows(conn: psycopg.Connection, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(load_sql(f"close/{name}.sql"), params).fetchall()


def _client(row: dict[str, Any]) -> ClientFigures:
    return ClientFigures(
        client_key=row["client_key"], client_name=row["client_name"], currency=row["currency"],
        exponent=int(row["exponent"]), hours=Decimal(row["hours"]), billable_hours=Decimal(row["billable_hours"]),
        entry_count=int(row["entry_count"]), invoices=int(row["invoices"]), time_billed_minor=int(row["time_minor"]),
        adjustments_minor=int(row["adjustments_minor"]), adjustment_lines=int(row["adjustment_lines"]),
        billed_minor=int(row["billed_minor"]), lines_minor=int(row["lines_minor"]), paid_minor=int(row["paid_minor"]),
        outstanding_minor=int(row["outstanding_minor"]), written_off_minor=int(row["written_off_minor"]),
        refunded_minor=int(row["refunded_minor"]), drafts=int(row["drafts"]), drafted_minor=int(row["drafted_minor"]),
        payment_exceptions=int(row["payment_exceptions"]), billing_exceptions=int(row["billing_exceptions"]),
        quarantined=int(row["quarantined"]), expenses_minor=int(row["expenses_minor"]),
    )  # fmt: skip


SUMMED = (
    "hours", "billable_hours", "entry_count", "invoices", "time_billed_minor", "adjustments_minor", "adjustment_lines",
    "billed_minor", "lines_minor", "paid_minor", "outstanding_minor", "written_off_minor", "refunded_minor", "drafts",
    "drafted_minor", "payment_exceptions", "billing_exceptions", "quarantined", "expenses_minor",
)  # fmt: skip


def currency_totals(
    clients: tuple[ClientFigures, ...], receivable: dict[str, tuple[int, int]] | None = None
) -> tuple[CurrencyTotals, ...]:
    """Per-currency sums of the client rows, each with its tie-outs: what was billed less what was paid and
    written off is what is outstanding; the invoices' totals are the sum of their lines (time, expenses, adjustments);
    and, from ``receivable`` (currency -> (ledger receivable, open invoices' unpaid remainder), all periods), the
    books agree with the invoices. Both sides come from different columns or tables, so a broken link shows as a
    difference."""
    receivable = receivable or {}
    out = []
    for currency in sorted({c.currency for c in clients}):
        rows = [c for c in clients if c.currency == currency]
        sums = {name: sum((getattr(c, name) for c in rows), Decimal(0) if "hours" in name else 0) for name in SUMMED}
        exponent = rows[0].exponent
        tie_outs = (
            TieOut(currency, exponent, "billed less paid and written off is outstanding",
                   "billed - paid - written off = outstanding",
                   sums["billed_minor"] - sums["paid_minor"] - sums["written_off_minor"], sums["outstanding_minor"]),
            TieOut(currency, exponent, "invoice totals are the sum of their lines",
                   "time lines + expense lines + adjustment lines = billed",
                   sums["time_billed_minor"] + sums["expenses_minor"] + sums["adjustments_minor"],
                   sums["billed_minor"]),
            TieOut(currency, exponent, "ledger receivable is the open invoices' unpaid remainder (all periods)",
                   "ledger receivable = unpaid on open invoices", *receivable.get(currency, (0, 0))),
        )  # fmt: skip
        out.append(CurrencyTotals(currency=currency, exponent=exponent, clients=len(rows), tie_outs=tie_outs, **sums))
    return tuple(out)


def _recon(conn: psycopg.Connection, period: str, history: int) -> tuple[dict[str, Any] | None, tuple[dict, ...]]:
    periods = previous_periods(period, history)
    runs: dict[str, dict[str, Any]] = {}
    for row in _rows(conn, "report_recon", {"periods": periods}):
        run = runs.setdefault(row["period"], {
            "period": row["period"], "run_id": row["run_id"], "status": row["run_status"],
            "started_at": row["started_at"], "finished_at": row["finished_at"], "data_docs": row["data_docs"],
            "checks": []})  # fmt: skip
        if row["check_name"] is not None:
            evidence = row["evidence"] or {}
            run["checks"].append({
                "check_name": row["check_name"], "suite": row["suite"], "status": row["status"],
                "observed": row["observed"] or {}, "tolerance": row["tolerance"] or {}, "evidence": evidence,
                "evidence_link": str(evidence.get("data_docs") or row["data_docs"] or ""),
            })  # fmt: skip
    history_rows = tuple(
        {"period": p, "run_id": runs[p]["run_id"] if p in runs else None,
         "status": runs[p]["status"] if p in runs else None,
         "checks": {c["check_name"]: c["status"] for c in runs[p]["checks"]} if p in runs else {}}
        for p in periods
    )  # fmt: skip
    return runs.get(period), history_rows


def _payouts(conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    by_status = [
        {"currency": r["currency"], "exponent": int(r["exponent"]), "status": r["status"], "items": int(r["items"]),
         "amount_minor": int(r["amount_minor"]), "hours": Decimal(r["hours"]), "batches": list(r["batches"])}
        for r in _rows(conn, "report_payouts", params)
    ]  # fmt: skip
    holds = _rows(conn, "report_holds", params)
    return {
        "by_status": by_status,
        "batches": _rows(conn, "report_payout_batches", params),
        "exceptions": [{**r, "hours": Decimal(r["hours"]), "payees": list(r["payees"]), "details": list(r["details"])}
                       for r in _rows(conn, "report_payout_exceptions", params)],
        "holds": holds,
        "open_holds": sum(1 for h in holds if h["released_at"] is None),
    }  # fmt: skip


def _cash_listed(conn: psycopg.Connection) -> bool:
    """Whether Stripe's balance transactions have been read from Stripe's list (closeout.payments.cash): before
    that there is no cash section (as the cash checks are not applicable)."""
    if conn.execute("SELECT to_regprocedure('closeout_data.stripe_listed_until(text)')").fetchone()[0] is None:
        return False
    listed = conn.execute("SELECT closeout_data.stripe_listed_until('balance_transactions')").fetchone()[0]
    return listed is not None


CASH_INTS = ("opening_minor", "gross_minor", "fees_minor", "refunds_minor", "disputes_minor", "other_minor",
             "net_minor", "paid_out_minor", "closing_minor", "ledger_closing_minor", "transactions", "payouts",
             "payouts_in_transit")  # fmt: skip
COLLECTION_INTS = ("invoices", "billed_minor", "credited_minor", "collected_minor", "refunded_minor",
                   "disputed_minor", "net_collected_minor")  # fmt: skip


CashSection = tuple[tuple[CashCurrency, ...], tuple[ClientCollections, ...]]


def _cash(conn: psycopg.Connection, params: dict[str, Any]) -> CashSection | None:
    """The cash section's rows, or None before Stripe's balance transactions have been listed."""
    if not _cash_listed(conn):
        return None
    reported = {r[0]: (int(r[1]), r[2]) for r in conn.execute(
        "SELECT currency, available_minor + pending_minor, observed_at FROM closeout.stripe_balances").fetchall()}
    cash = []
    for r in _rows(conn, "report_cash", params):
        stripe_now = reported.get(r["currency"])
        cash.append(CashCurrency(
            currency=r["currency"], exponent=int(r["exponent"]), as_of=r["as_of"],
            stripe_reported_minor=stripe_now[0] if stripe_now else None,
            stripe_reported_at=stripe_now[1] if stripe_now else None,
            **{k: int(r[k]) for k in CASH_INTS}))  # fmt: skip
    collections = tuple(
        ClientCollections(client_key=r["client_key"], client_name=r["client_name"], currency=r["currency"],
                          exponent=int(r["exponent"]), **{k: int(r[k]) for k in COLLECTION_INTS})
        for r in _rows(conn, "report_collections", params)
    )  # fmt: skip
    return tuple(cash), collections


def _period_state(conn: psycopg.Connection, period: str) -> dict[str, list[dict[str, Any]]]:
    """Rows of the period-lock and period-close views for this period, when those views exist. Their columns
    belong to another stage, so rows are read whole (to_jsonb) and matched on a ``period`` column."""
    out: dict[str, list[dict[str, Any]]] = {}
    for view in PERIOD_STATE_VIEWS:
        if conn.execute("SELECT to_regclass(%s)", (view,)).fetchone()[0] is None:
            continue
        schema, name = view.split(".")
        query = sql.SQL("SELECT to_jsonb(v) FROM {} v WHERE to_jsonb(v) ->> 'period' = %s").format(
            sql.Identifier(schema, name)
        )
        rows = [r[0] for r in conn.execute(query, (period,)).fetchall()]
        out[name] = sorted(rows, key=lambda r: sorted((k, str(v)) for k, v in r.items()))
    return out


def close_artifacts(period_state: dict[str, list[dict[str, Any]]], close_run_id: str | None,
                    recon: dict[str, Any] | None) -> tuple[dict[str, str], ...]:  # fmt: skip
    """The files the close run ``close_run_id`` recorded in its steps (``closeout.period_closes.steps``): the
    accounting export's manifest and files, and the reconcile's Data Docs when the reconciliation section does
    not already link them (a dry run forgets its reconcile run, so only its step knows where its pages are)."""
    if close_run_id is None:
        return ()
    run = next((r for r in period_state.get("period_closes", []) if str(r.get("close_run_id")) == str(close_run_id)),
               None)  # fmt: skip
    steps = (run or {}).get("steps") or {}
    out: list[dict[str, str]] = []
    export = (steps.get("accounting_export") or {}).get("summary") or {}
    folder = export.get("folder")
    if isinstance(folder, str) and folder:
        names = ["manifest.json", *(f["name"] for f in export.get("files") or []
                                    if isinstance(f, dict) and isinstance(f.get("name"), str))]  # fmt: skip
        out.extend({"label": f"Accounting export: {name}", "location": f"{folder.rstrip('/')}/{name}"}
                   for name in names)  # fmt: skip
    docs = ((steps.get("reconcile") or {}).get("summary") or {}).get("data_docs")
    if isinstance(docs, str) and docs and docs != (recon or {}).get("data_docs"):
        out.append({"label": "Reconciliation Data Docs" + (" (dry run)" if run and run.get("dry_run") else ""),
                    "location": docs})  # fmt: skip
    return tuple(out)


def _steps(steps: list[dict[str, Any]] | None) -> tuple[dict[str, Any], ...]:
    out = []
    for i, step in enumerate(steps or []):
        if not isinstance(step, dict) or not step.get("step"):
            raise ReportError(f"steps[{i}]: a step summary needs a 'step' name, got {step!r}")
        out.append({"step": str(step["step"]), "status": str(step.get("status") or ""),
                    "counts": dict(step.get("counts") or {}), "message": str(step.get("message") or "")})  # fmt: skip
    return tuple(out)


def build_report(
    conn: psycopg.Connection,
    period: str,
    *,
    steps: list[dict] | None = None,
    dry_run: bool = False,
    close_run_id: str | None = None,
    history: int = 6,
) -> CloseReport:
    """Read the period's figures (one read-only pass, one snapshot) and compute totals and tie-outs."""
    start, end = parse_period(period)
    params = {"period": period, "period_start": start, "period_end": end}
    fresh = conn.info.transaction_status == TransactionStatus.IDLE
    with conn.transaction():
        if fresh:  # one snapshot for every figure; inside a caller's transaction, that transaction's
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        clients = tuple(_client(r) for r in _rows(conn, "report_clients", params))
        invoices = tuple(_rows(conn, "report_invoices", params))
        adjustments = tuple(_rows(conn, "report_adjustments", params))
        exceptions = tuple(_rows(conn, "report_exceptions", params))
        recon, recon_history = _recon(conn, period, history)
        payouts = _payouts(conn, params)
        period_state = _period_state(conn, period)
        earlier_open = tuple(_rows(conn, "report_earlier_open", params))
        receivable = {r["currency"]: (int(r["ledger_receivable_minor"]), int(r["open_unpaid_minor"]))
                      for r in _rows(conn, "report_receivable", params)}  # fmt: skip
        listed = _cash(conn, params)
        cash, collections = listed or ((), ())
        dead_links = tuple(_rows(conn, "report_dead_links", params))
        from closeout.summary.month import month_figures

        margins, margin_names = month_figures(conn, start, end)
    return CloseReport(
        period=period, period_start=start, period_end=end, dry_run=bool(dry_run), close_run_id=close_run_id,
        generated_at=datetime.now(UTC).replace(microsecond=0).isoformat(), clients=clients,
        totals=currency_totals(clients, receivable), invoices=invoices, adjustments=adjustments, exceptions=exceptions,
        recon=recon, recon_history=recon_history, payouts=payouts, steps=_steps(steps), period_state=period_state,
        earlier_open=earlier_open, cash=cash, collections=collections, cash_listed=listed is not None,
        dead_links=dead_links, artifacts=close_artifacts(period_state, close_run_id, recon), margins=margins,
        margin_names={**margin_names, **{k: v for k, v in {c.client_key: c.client_name for c in clients}.items() if v}},
    )  # fmt: skip
