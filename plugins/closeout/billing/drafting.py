"""Refresh invoice drafts for every open period, set-based, touching only what changed.

The rules (the SQL in ``include/sql/billing/`` is their implementation, in this order):

1. ``10_dirty``: entries with a version the drafting has not judged yet (or forced back by a config,
   identity map or void change).
2. ``20_judge``: each is judged against its client's configuration: billable, or why not (deleted,
   running, not billable, not approved, already invoiced in the tracker) or an exception (no rate,
   currency other than the client's, no client, negative hours). Its amount is its quantity times its
   own version's rate snapshot, rounded once, half-up, in the billing currency's minor unit.
3. ``30_days``: a user's day over 24 hours turns its billable entries into exceptions.
4. ``40_desired``: what each entry should contribute to drafts: a time row on its period's draft
   while nothing about it is frozen; otherwise the difference to what frozen invoices billed, as
   adjustment or credit rows on the client's next draft, linked to the line it corrects.
5. ``50_apply`` and ``60_lines``: the difference is written as one new version of each changed draft:
   the line entries and lines it touches get a new row each (the old one closed at that version);
   everything else carries over unwritten, and the views number each version's lines.
6. ``70``-``90``: billable expenses, judged whole each run and written the same way.
7. ``95_tax``: a taxed client's drafts carry its tax configuration and their tax, each line's rounded
   once, half-up, in the minor unit; the total is the lines plus an exclusive rate's tax
   (docs/invoice-tax.md).

The cost of a run follows what changed: a refresh after 1% of a million entries changed reads and
writes about 1% (plus one comparison of entry versions), and the first run, which writes everything,
fills the empty tables without their indexes and builds those once at the end.

Everything runs in the caller's transaction under one advisory lock, so a failed or killed run
leaves no trace and a retry starts from the same state; drafting twice in a row writes nothing.
Invariant 1 (every approved billable entry billed exactly once) and invariant 2 (a line is its
quantity times its rate rounded once; an invoice is the sum of its lines, plus its exclusive tax) hold
after every run.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from closeout.billing.expenses import EXPENSE_TEMP_TABLES, expense_counts
from closeout.masking import mask_secrets
from closeout.paths import sql_statements

_WRITES = re.compile(
    r"^\s*(INSERT INTO|UPDATE|DELETE FROM|CREATE TEMP TABLE|CREATE FUNCTION|ANALYZE)\s+([\w.]+)",
    re.MULTILINE,
)

# pg_advisory_xact_lock key shared by everything that changes drafts (drafting, config, freezing).
BILLING_LOCK = 0x636C6F7365_01  # "close" + 1
ANALYZE_AFTER_ROWS = 50_000
JUDGE_WRITER = "billing/20_judge.sql"  # writes the judgements into billing_entries
# The indexes a first run would otherwise fill row by row, a million keys in random order. (A partial
# index few rows qualify for, like billing_entries_kept_out, costs nothing to keep and a pass to rebuild.)
BULK_INDEXES = ("billing_entries_pkey", "invoice_line_entries_current_by_entry", "invoice_lines_pkey")
SCRIPTS = (
    "billing/10_dirty.sql",
    "billing/20_judge.sql",
    "billing/30_days.sql",
    "billing/40_desired.sql",
    "billing/50_apply.sql",
    "billing/60_lines.sql",
    # expenses (invariant 10): judged whole each run, written as the difference (closeout.billing.expenses)
    "billing/70_expense_judge.sql",
    "billing/80_expense_desired.sql",
    "billing/90_expense_apply.sql",
    # tax on the invoice itself (issue 17 item 3): each taxed draft's tax and total, from its lines
    "billing/95_tax.sql",
)
TEMP_TABLES = (
    "billing_dirty", "billing_run", "billing_days", "billing_frozen", "billing_last_billed", "billing_adjusting",
    "billing_names",
    "billing_desired", "billing_current", "billing_to_close", "billing_bumped", "billing_closing",
    "billing_line_deltas", "billing_new_lines",
    *EXPENSE_TEMP_TABLES,
)  # fmt: skip


@dataclass
class DraftSummary:
    draft_run_id: int
    entries_judged: int = 0
    invoices_changed: int = 0
    rows_closed: int = 0
    rows_added: int = 0
    adjustment_lines: int = 0
    credit_lines: int = 0
    exceptions: int = 0
    excluded: int = 0
    quarantined: int = 0
    expense_rows_added: int = 0
    expense_rows_closed: int = 0
    expense_lines_changed: int = 0
    exceptions_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lock_billing(conn: psycopg.Connection) -> None:
    """Serialise every writer of drafts until the caller's transaction ends."""
    from closeout import locks

    locks.acquire(conn, BILLING_LOCK, name="closeout.billing", transaction=True)  # bounded, names the holder


def refresh_drafts(conn: psycopg.Connection, *, airflow_run_id: str | None = None) -> DraftSummary:
    """One drafting run inside the caller's transaction (the caller commits)."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    lock_billing(conn)
    # one drafting run at a time (the lock): let its sorts and hashes stay in memory
    conn.execute("SET LOCAL work_mem = '256MB'")
    # what it reads is hot (entries, versions, line entries): with the default random_page_cost of 4
    # the planner scans a million rows rather than probe an index ten thousand times, and a refresh
    # of a few changed entries would cost as much as reading everything
    conn.execute("SET LOCAL random_page_cost = 1.1")
    # dates are spelled into line keys and descriptions: the same spelling whatever the session's setting
    conn.execute("SET LOCAL DateStyle = 'ISO, MDY'")
    (run_id,) = conn.execute(
        "INSERT INTO closeout_data.draft_runs (airflow_run_id, status) VALUES (%s, 'running') RETURNING draft_run_id",
        (airflow_run_id,),
    ).fetchone()
    _drop_temp_tables(conn)
    _rejudge_if_identity_changed(conn)
    # invoices are frozen between runs, by other transactions: how many are frozen decides how the
    # adjustment steps join (sampled statistics that still say "none" once made a refresh take minutes)
    conn.execute("ANALYZE closeout_data.invoices")
    deferred = _defer_indexes_of_empty_tables(conn)
    timings["prepare"] = _since(started)
    # the period lock (closeout.billing.periods), read under the billing lock so no lock lands mid-run; passed
    # as a parameter, not read by the SQL, so the planner sees the date (or NULL: nothing locked, and the
    # locked-period conditions fold away, leaving the plans of a run without locks as they were)
    (locked_through,) = conn.execute("SELECT closeout_data.locked_through()").fetchone()
    params = {"draft_run_id": run_id, "locked_through": locked_through}
    analysed: set[str] = set()
    for script in SCRIPTS:
        for index, statement in enumerate(sql_statements(script)):
            step = time.perf_counter()
            conn.execute(statement, params if "%(" in statement else None)
            created = _temp_table_created_from_query(statement)
            if created:
                # temp tables are never auto-analysed; without statistics the planner guesses badly
                conn.execute(f"ANALYZE {created}")
            timings[f"{script.split('/')[-1][:-4]}.{index} {_target(statement)}"] = _since(step)
        if script == JUDGE_WRITER:
            step = time.perf_counter()
            if _judged(conn) > ANALYZE_AFTER_ROWS:
                # the next steps join the judged entries by the hundred thousand: planned against the
                # statistics of an empty table (a first run), they would rescan per row
                conn.execute("ANALYZE closeout_data.billing_entries")
                analysed.add("billing_entries")
            timings["analyze.entries"] = _since(step)
    step = time.perf_counter()
    for definition in deferred:
        conn.execute(definition)
    timings["indexes.build"] = _since(step)
    step = time.perf_counter()
    summary = _summarise(conn, run_id)
    timings["summary"] = _since(step)
    if summary.rows_added + summary.rows_closed > ANALYZE_AFTER_ROWS:
        # a big change (a first run): fresh statistics, or the next run plans against empty tables
        step = time.perf_counter()
        for table in ("billing_entries", "invoice_line_entries", "invoice_lines", "invoices"):
            if table not in analysed:
                conn.execute(f"ANALYZE closeout_data.{table}")
        timings["analyze.final"] = _since(step)
    summary.step_seconds = timings
    _drop_temp_tables(conn)
    summary.seconds = _since(started)
    conn.execute(
        """UPDATE closeout_data.draft_runs SET status = 'succeeded', finished_at = clock_timestamp(),
               entries_judged = %(entries_judged)s, invoices_changed = %(invoices_changed)s,
               rows_closed = %(rows_closed)s, rows_added = %(rows_added)s,
               adjustment_lines = %(adjustment_lines)s, credit_lines = %(credit_lines)s,
               exceptions = %(exceptions)s, excluded = %(excluded)s, exceptions_by_reason = %(by_reason)s
           WHERE draft_run_id = %(draft_run_id)s""",
        {**summary.as_dict(), "by_reason": Jsonb(summary.exceptions_by_reason)},
    )
    return summary


def _target(statement: str) -> str:
    """What a statement writes, for the step timings (e.g. ``INSERT billing_entries``)."""
    found = _WRITES.search(statement)
    return f"{found.group(1).split()[0]} {found.group(2).split('.')[-1]}" if found else "?"


def _temp_table_created_from_query(statement: str) -> str | None:
    """The temp table a ``CREATE TEMP TABLE ... AS`` statement fills (leading comments skipped)."""
    code = [line for line in statement.splitlines() if line.strip() and not line.lstrip().startswith("--")]
    if code and code[0].startswith("CREATE TEMP TABLE") and code[0].rstrip().endswith(" AS"):
        return code[0].split()[3]
    return None


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def _judged(conn: psycopg.Connection) -> float:
    """How many entries this run judges (billing_dirty's row count, as its ANALYZE recorded it)."""
    (judged,) = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'pg_temp.billing_dirty'::regclass").fetchone()
    return judged


def record_failure(conn: psycopg.Connection, *, airflow_run_id: str | None, error: BaseException) -> None:
    """A failed run leaves nothing behind but this row (its own transaction), so finance can see it."""
    conn.execute(
        """INSERT INTO closeout_data.draft_runs (airflow_run_id, status, finished_at, error)
           VALUES (%s, 'failed', clock_timestamp(), %s)""",
        (airflow_run_id, mask_secrets(f"{type(error).__name__}: {error}")[:2000]),
    )


def _drop_temp_tables(conn: psycopg.Connection) -> None:
    conn.execute("DROP FUNCTION IF EXISTS pg_temp.billing_judged(boolean)")
    conn.execute("DROP TABLE IF EXISTS " + ", ".join(f"pg_temp.{name}" for name in TEMP_TABLES))


def _defer_indexes_of_empty_tables(conn: psycopg.Connection) -> list[sql.Composable]:
    """Drop the bulk indexes of the tables that are empty, and return the statements that rebuild them.

    On a first run every entry is new: a million rows go into billing_entries and nearly as many into
    invoice_line_entries. Maintaining their indexes row by row, in random key order, costs several
    times what building each index once from the finished table does. The drop and the rebuild are in
    the run's transaction: a failed run restores the indexes with everything else, and a rebuilt
    primary key checks uniqueness over the whole table. Tables that already hold rows keep their
    indexes (an incremental run needs them for its lookups).
    """
    (empty,) = conn.execute(
        """SELECT array_remove(ARRAY[
               CASE WHEN NOT EXISTS (SELECT 1 FROM closeout_data.billing_entries) THEN 'billing_entries' END,
               CASE WHEN NOT EXISTS (SELECT 1 FROM closeout_data.invoice_line_entries)
                    THEN 'invoice_line_entries' END,
               CASE WHEN NOT EXISTS (SELECT 1 FROM closeout_data.invoice_lines) THEN 'invoice_lines' END], NULL)"""
    ).fetchone()
    if not empty:
        return []
    indexes = conn.execute(
        """SELECT t.relname, x.relname, con.conname, pg_get_indexdef(i.indexrelid), pg_get_constraintdef(con.oid)
           FROM pg_index i
           JOIN pg_class t ON t.oid = i.indrelid
           JOIN pg_class x ON x.oid = i.indexrelid
           LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
           WHERE t.relnamespace = 'closeout_data'::regnamespace AND t.relname = ANY(%s) AND x.relname = ANY(%s)
             AND pg_has_role(t.relowner, 'USAGE')  -- only the owner may drop them: a closeout_pipeline login keeps them
           ORDER BY t.relname, x.relname""",
        (empty, list(BULK_INDEXES)),
    ).fetchall()
    rebuild: list[sql.Composable] = []
    for table, index, constraint, index_definition, constraint_definition in indexes:
        if constraint:
            conn.execute(
                sql.SQL("ALTER TABLE closeout_data.{} DROP CONSTRAINT {}").format(
                    sql.Identifier(table), sql.Identifier(constraint)
                )
            )
            rebuild.append(
                sql.SQL("ALTER TABLE closeout_data.{} ADD CONSTRAINT {} ").format(
                    sql.Identifier(table), sql.Identifier(constraint)
                )
                + sql.SQL(constraint_definition)
            )
        else:
            conn.execute(sql.SQL("DROP INDEX closeout_data.{}").format(sql.Identifier(index)))
            rebuild.append(sql.SQL(index_definition))
    return rebuild


def _rejudge_if_identity_changed(conn: psycopg.Connection) -> None:
    """A changed identity map can move entries between clients and users: judge everything again."""
    (fingerprint,) = conn.execute(
        """SELECT md5(coalesce(string_agg(source || '|' || kind || '|' || source_id || '|' || key, ','
                                          ORDER BY source, kind, source_id), ''))
           FROM closeout_data.identity_map"""
    ).fetchone()
    (stored,) = conn.execute("SELECT identity_fingerprint FROM closeout_data.billing_state").fetchone()
    if fingerprint != stored:
        conn.execute("UPDATE closeout_data.billing_entries SET entry_version = -1 WHERE entry_version <> -1")
        conn.execute("UPDATE closeout_data.billing_state SET identity_fingerprint = %s", (fingerprint,))


def _summarise(conn: psycopg.Connection, run_id: int) -> DraftSummary:
    counts = conn.execute(
        """SELECT (SELECT count(*) FROM billing_dirty),
                  (SELECT count(*) FROM (SELECT invoice_id FROM billing_bumped
                                         UNION SELECT invoice_id FROM expense_bumped) b),
                  (SELECT count(*) FROM billing_to_close), (SELECT count(*) FROM billing_desired),
                  (SELECT count(*) FROM billing_new_lines WHERE kind = 'adjustment' AND entry_count > 0),
                  (SELECT count(*) FROM billing_new_lines WHERE kind = 'credit' AND entry_count > 0),
                  (SELECT count(*) FROM closeout_data.billing_entries WHERE state = 'billed_in_source'),
                  (SELECT count(*) FROM closeout_data.quarantine
                   WHERE entity = 'time_entry' AND resolved_at IS NULL)"""
    ).fetchone()
    by_reason = dict(
        conn.execute(
            """SELECT reason, count(*) FROM closeout_data.billing_entries WHERE state = 'exception'
               GROUP BY reason ORDER BY reason"""
        ).fetchall()
    )
    expenses = expense_counts(conn)
    return DraftSummary(
        draft_run_id=run_id,
        entries_judged=counts[0],
        invoices_changed=counts[1],
        rows_closed=counts[2],
        rows_added=counts[3],
        adjustment_lines=counts[4],
        credit_lines=counts[5],
        exceptions=sum(by_reason.values()),
        excluded=counts[6],
        quarantined=counts[7],
        exceptions_by_reason=by_reason,
        **expenses,
    )
