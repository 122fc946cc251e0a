"""Clockify write-back: mark exactly the entries closeout billed as invoiced.

``PATCH /workspaces/{ws}/time-entries/invoiced`` with ``{"timeEntryIds": [...], "invoiced": true}``, in batches,
once per issued invoice (a ``tracker_writebacks`` row of kind ``invoiced_flag``, planned, sent, then done). Setting
the flag is idempotent in Clockify (marking an invoiced entry invoiced changes nothing), so a row found 'sent' after
a lost answer is sent again as it was: the tracker ends in the same state, and nothing else is touched. Clockify
shows the flag in its detailed report (``invoicingState``), which the next sync captures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg
from psycopg.rows import dict_row

from closeout.paths import load_sql
from closeout.trackers.clockify.hook import ClockifyHook
from closeout.trackers.transport import TrackerAPIError
from closeout.writeback import records

SOURCE = "clockify"
BATCH = 500


@dataclass
class ClockifySummary:
    invoices: int = 0
    entries: int = 0
    batches: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def flag_invoiced(conn: psycopg.Connection, hook: ClockifyHook, *, batch: int = BATCH) -> ClockifySummary:
    """Flag the billed entries of every issued invoice not yet flagged."""
    summary = ClockifySummary()
    with conn.cursor(row_factory=dict_row) as cur:
        due = cur.execute(load_sql("writeback/clockify_to_flag.sql")).fetchall()
    conn.commit()
    if not due:
        return summary
    transport = hook.get_conn()
    url = f"{hook._base}/workspaces/{hook.workspace_id}/time-entries/invoiced"
    for invoice in due:
        ids: list[str] = list(invoice["entry_ids"])
        chunks = [ids[n : n + batch] for n in range(0, len(ids), batch)]
        row = records.plan(conn, source=SOURCE, object_kind="invoiced_flag", closeout_ref=invoice["invoice_id"],
                           invoice_id=invoice["invoice_id"], writeback_key=invoice["invoice_id"],
                           request={"entries": len(ids)})  # fmt: skip
        records.mark_sent(conn, row, method="patch_invoiced", request={"entries": len(ids), "batches": len(chunks)})
        try:
            for chunk in chunks:
                transport.send("PATCH", url, json_body={"timeEntryIds": chunk, "invoiced": True})
                summary.batches += 1
        except TrackerAPIError as exc:
            if exc.status is None or exc.status >= 500 or exc.status == 429:
                raise  # no answer: the row stays 'sent'; the retry sends the same (idempotent) batches
            records.complete(conn, row, status="failed", reason=f"Clockify refused the flags: {exc}"[:2000])
            conn.commit()
            summary.failed += 1
            continue
        records.complete(conn, row, status="done", response={"entries": len(ids), "batches": len(chunks)})
        conn.commit()
        summary.invoices += 1
        summary.entries += len(ids)
    return summary
