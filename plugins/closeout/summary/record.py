"""The week's record in the warehouse (``closeout_data.weekly_summaries``, migration 0037): figures snapshot,
artifact locations, and the e-mail's delivery identity, so the summary is sent once per week however often it
runs.

Sending is a claim and a completion, as the alerts do it: the claim records the Message-ID before the SMTP call
(``sending_message_id``), the completion records ``sent_at``. A worker killed between the two finds the claim on
its retry and sends again under the same Message-ID, which mail systems (and people) recognise as the same mail.
A resend is finance asking again (the DAG's ``resend`` param): recorded in ``resends`` with the Airflow run that
asked, once per run, each with a Message-ID of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from closeout.summary.build import WeeklySummary


@dataclass(frozen=True)
class SendClaim:
    week: str
    message_id: str
    resend: bool


def message_id(week: str, n: int) -> str:
    """The n-th delivery of the week's summary (1 = the weekly send); stable, so a retried send is the same mail."""
    return f"weekly-summary.{week}.{n}@closeout"


def save(conn: psycopg.Connection, s: WeeklySummary, figures: dict[str, Any], artifacts: dict[str, str],
         airflow_run_id: str | None) -> int:  # fmt: skip
    """Upsert the week's row (a rerun re-renders: figures, files and ``renders`` move on, the delivery does not)
    and its baselines for later "changes since" (its own week and every earlier week it restated). Returns the
    number of renders so far. In the caller's transaction."""
    (renders,) = conn.execute(
        """INSERT INTO closeout_data.weekly_summaries AS w
               (week, week_start, week_end, figures, figures_at, artifacts, airflow_run_id)
           VALUES (%(week)s, %(start)s, %(end)s, %(figures)s, %(at)s, %(artifacts)s, %(run)s)
           ON CONFLICT (week) DO UPDATE SET figures = EXCLUDED.figures, figures_at = EXCLUDED.figures_at,
               artifacts = EXCLUDED.artifacts, airflow_run_id = EXCLUDED.airflow_run_id,
               renders = w.renders + 1, generated_at = clock_timestamp()
           RETURNING renders""",
        {"week": s.week.label, "start": s.week.start, "end": s.week.end, "figures": Jsonb(figures),
         "at": s.figures_at, "artifacts": Jsonb(artifacts), "run": airflow_run_id},
    ).fetchone()  # fmt: skip
    conn.execute("DELETE FROM closeout_data.weekly_summary_figures WHERE summarised_in = %s", (s.week.label,))
    baselines = [(s.week.label, s.figures.keyed()), *((w, f.keyed()) for w, f in sorted(s.restated.items()))]
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO closeout_data.weekly_summary_figures (week, summarised_in, figures_at, figures)
               VALUES (%s, %s, %s, %s)""",
            [(week, s.week.label, s.figures_at, Jsonb(keyed)) for week, keyed in baselines],
        )
    return int(renders)


def claim_send(conn: psycopg.Connection, week: str, airflow_run_id: str, resend: bool) -> SendClaim | None:
    """The delivery this run must make, or None (already sent, and no resend asked by this run). Locks the row
    for the caller's transaction, so two runs of the same week cannot both claim."""
    row = conn.execute(
        """SELECT sent_at, sending_message_id, sends, resends FROM closeout_data.weekly_summaries
           WHERE week = %s FOR UPDATE""",
        (week,),
    ).fetchone()
    if row is None:
        raise LookupError(f"weekly summary {week} has not been rendered: run the summarise step first")
    sent_at, pending, sends, resends = row
    if pending:  # a claim made and never completed (the worker died around the SMTP call): the same mail again
        return SendClaim(week, pending, pending != message_id(week, 1))
    if sent_at is not None and not resend:
        return None
    if sent_at is not None and any(r.get("airflow_run_id") == airflow_run_id for r in resends):
        return None  # this run's resend already went out (a task retry after completing)
    n = sends + 1
    claim = SendClaim(week, message_id(week, n), sent_at is not None)
    extra = [{"airflow_run_id": airflow_run_id, "message_id": claim.message_id}] if claim.resend else []
    conn.execute(
        """UPDATE closeout_data.weekly_summaries
           SET sending_message_id = %s,
               resends = resends || (SELECT coalesce(jsonb_agg(r || jsonb_build_object('requested_at',
                                     clock_timestamp())), '[]'::jsonb) FROM jsonb_array_elements(%s::jsonb) r)
           WHERE week = %s""",
        (claim.message_id, Jsonb(extra), week),
    )
    return claim


def complete_send(conn: psycopg.Connection, claim: SendClaim, recipients: list[str]) -> datetime:
    """Record the delivery the server accepted."""
    (sent_at,) = conn.execute(
        """UPDATE closeout_data.weekly_summaries
           SET sent_at = clock_timestamp(), message_id = sending_message_id, sending_message_id = NULL,
               sends = sends + 1, recipients = %s,
               resends = (SELECT coalesce(jsonb_agg(CASE WHEN r.v ->> 'message_id' = sending_message_id
                                                          THEN r.v || jsonb_build_object('sent_at', clock_timestamp())
                                                          ELSE r.v END ORDER BY r.i), '[]'::jsonb)
                          FROM jsonb_array_elements(resends) WITH ORDINALITY r(v, i))
           WHERE week = %s AND sending_message_id = %s
           RETURNING sent_at""",
        (recipients, claim.week, claim.message_id),
    ).fetchone()
    return sent_at


def artifacts_of(conn: psycopg.Connection, week: str) -> dict[str, str]:
    row = conn.execute("SELECT artifacts FROM closeout_data.weekly_summaries WHERE week = %s", (week,)).fetchone()
    return dict(row[0]) if row else {}


def figures_of(conn: psycopg.Connection, week: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT figures FROM closeout_data.weekly_summaries WHERE week = %s", (week,)).fetchone()
    return row[0] if row else None
