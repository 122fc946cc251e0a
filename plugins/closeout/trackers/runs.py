"""Sync run bookkeeping: one ``sync_runs`` row per sync, its resume checkpoint and its call log.

At most one sync per tracker is running (a partial unique index says so). A run that did not
finish -- killed worker, exhausted retries -- stays 'running' and is adopted by the next attempt,
which continues from its checkpoint: nothing is re-fetched that was committed, nothing is lost.
Writers also hold a per-tracker advisory lock, so a misconfigured second DAG run fails fast instead
of interleaving pages with the first.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from closeout.masking import mask_secrets, mask_shapes
from closeout.trackers.transport import CallRecord

_REQUEST_COLUMNS = "sync_run_id, seq, phase, method, url, status, outcome, duration_ms, records, requested_at"


class SyncBusy(RuntimeError):
    """Another worker holds this tracker's sync lock."""


@dataclass
class SyncRun:
    sync_run_id: int
    source: str
    mode: str
    status: str
    cursor_in: dict[str, Any]
    checkpoint: dict[str, Any]
    started_at: datetime
    resumed: bool = False
    counters: dict[str, int] = field(default_factory=dict)

    def phase(self, name: str) -> dict[str, Any]:
        return self.checkpoint.setdefault(name, {})


def _lock_key(source: str) -> int:
    return zlib.crc32(f"closeout.sync.{source}".encode())


LOCK_WAIT = "20s"  # a Postgres-style duration: "20s" or "200ms"


def _seconds(duration: str) -> float:
    return float(duration[:-2]) / 1000 if duration.endswith("ms") else float(duration.rstrip("s"))


def acquire_source_lock(conn: psycopg.Connection, source: str) -> None:
    """Session-level lock held for the task's lifetime (released when the connection closes).

    It waits a little instead of failing at once: a closed connection's lock is released only when
    the server has finished tearing its session down (seconds after a large sync), and the next
    phase of the same run must not mistake that for a concurrent sync. A real concurrent sync holds
    the lock far longer than the wait and gets ``SyncBusy``, naming the holder (its DAG, task and run).
    """
    from closeout import locks

    try:
        locks.acquire(conn, _lock_key(source), name=f"closeout.sync.{source}", wait=_seconds(LOCK_WAIT))
    except locks.LockBusy as exc:
        if not conn.autocommit:
            conn.rollback()
        raise SyncBusy(f"another {source} sync holds the lock; this one will retry later: {exc}") from None
    if not conn.autocommit:
        conn.commit()


def begin(
    conn: psycopg.Connection,
    source: str,
    airflow_run_id: str | None,
    *,
    full_refresh: bool = False,
    cursor_key: str = "entries_since",
) -> SyncRun:
    """Adopt the unfinished run of this tracker, or start a new one (full or incremental)."""
    with conn.transaction():
        row = conn.execute(
            """SELECT sync_run_id FROM closeout_data.sync_runs
               WHERE source = %s AND status IN ('running', 'paused') FOR UPDATE""",
            (source,),
        ).fetchone()
        if row:
            conn.execute("UPDATE closeout_data.sync_runs SET status = 'running' WHERE sync_run_id = %s", (row[0],))
            conn.execute(
                """UPDATE closeout_data.sync_runs
                   SET airflow_run_ids = CASE WHEN %(rid)s::text IS NULL OR %(rid)s = ANY(airflow_run_ids)
                                              THEN airflow_run_ids ELSE airflow_run_ids || %(rid)s::text END
                   WHERE sync_run_id = %(id)s""",
                {"rid": airflow_run_id, "id": row[0]},
            )
            run = load(conn, row[0])
            run.resumed = True
            return run
        last = conn.execute(
            """SELECT cursor FROM closeout_data.sync_runs
               WHERE source = %s AND status IN ('succeeded', 'partial') AND cursor IS NOT NULL
               ORDER BY sync_run_id DESC LIMIT 1""",
            (source,),
        ).fetchone()
        cursor_in = last[0] if last else None
        mode = "full" if full_refresh or not cursor_in or not cursor_in.get(cursor_key) else "incremental"
        (sync_run_id,) = conn.execute(
            """INSERT INTO closeout_data.sync_runs (source, mode, status, airflow_run_ids, cursor_in)
               VALUES (%s, %s, 'running', %s, %s) RETURNING sync_run_id""",
            (source, mode, [airflow_run_id] if airflow_run_id else [], Jsonb(cursor_in or {})),
        ).fetchone()
    return load(conn, sync_run_id)


def load(conn: psycopg.Connection, sync_run_id: int) -> SyncRun:
    row = conn.execute(
        """SELECT sync_run_id, source, mode, status, cursor_in, checkpoint, started_at,
                  requests, records, versions_created, deletions, quarantined
           FROM closeout_data.sync_runs WHERE sync_run_id = %s""",
        (sync_run_id,),
    ).fetchone()
    if row is None:
        raise LookupError(f"sync run {sync_run_id} does not exist")
    counters = dict(zip(("requests", "records", "versions_created", "deletions", "quarantined"), row[7:], strict=True))
    return SyncRun(row[0], row[1], row[2], row[3], row[4] or {}, row[5] or {}, row[6], counters=counters)


def save_progress(
    conn: psycopg.Connection,
    run: SyncRun,
    phase: str,
    calls: Sequence[CallRecord],
    *,
    records: int = 0,
    versions: int = 0,
    deletions: int = 0,
    quarantined: int = 0,
) -> None:
    """Write the checkpoint, counters and call log in the caller's (page) transaction."""
    (requests_after,) = conn.execute(
        """UPDATE closeout_data.sync_runs
           SET checkpoint = %s, requests = requests + %s, records = records + %s,
               versions_created = versions_created + %s, deletions = deletions + %s,
               quarantined = quarantined + %s
           WHERE sync_run_id = %s AND status = 'running'
           RETURNING requests""",
        (Jsonb(run.checkpoint), len(calls), records, versions, deletions, quarantined, run.sync_run_id),
    ).fetchone()
    if calls:
        first_seq = requests_after - len(calls) + 1
        with conn.cursor().copy(f"COPY closeout_data.sync_requests ({_REQUEST_COLUMNS}) FROM STDIN") as copy:
            for offset, call in enumerate(calls):
                copy.write_row(
                    (
                        run.sync_run_id,
                        first_seq + offset,
                        phase,
                        call.method,
                        mask_shapes(call.url),  # a credential in a query string is never stored
                        call.status,
                        call.outcome,
                        call.duration_ms,
                        call.records,
                        call.requested_at,
                    )
                )
    for key, value in (
        ("requests", len(calls)),
        ("records", records),
        ("versions_created", versions),
        ("deletions", deletions),
        ("quarantined", quarantined),
    ):
        run.counters[key] = run.counters.get(key, 0) + value


def finish(
    conn: psycopg.Connection,
    run: SyncRun,
    *,
    status: str,
    cursor: dict[str, Any] | None,
    sweep_completed: bool,
    error: str | None = None,
) -> None:
    with conn.transaction():
        conn.execute(
            """UPDATE closeout_data.sync_runs
               SET status = %s, cursor = %s, finished_at = clock_timestamp(), error = %s, checkpoint = %s,
                   sweep_completed_at = CASE WHEN %s THEN clock_timestamp() ELSE sweep_completed_at END
               WHERE sync_run_id = %s AND status = 'running'""",
            (
                status,
                Jsonb(cursor) if cursor is not None else None,
                mask_secrets(error),
                Jsonb(run.checkpoint),
                sweep_completed,
                run.sync_run_id,
            ),
        )
    run.status = status


def pause(conn: psycopg.Connection, run: SyncRun, reason: str) -> None:
    """Budget spent: keep the checkpoint, free nothing; the next run adopts and continues this one."""
    with conn.transaction():
        conn.execute(
            """UPDATE closeout_data.sync_runs SET status = 'paused', checkpoint = %s, error = %s
               WHERE sync_run_id = %s AND status = 'running'""",
            (Jsonb(run.checkpoint), mask_secrets(reason), run.sync_run_id),
        )
    run.status = "paused"


def last_sweep_completed_at(conn: psycopg.Connection, source: str) -> datetime | None:
    (value,) = conn.execute(
        "SELECT max(sweep_completed_at) FROM closeout_data.sync_runs WHERE source = %s", (source,)
    ).fetchone()
    return value


def summary(run: SyncRun) -> dict[str, Any]:
    return json.loads(
        json.dumps(
            {
                "sync_run_id": run.sync_run_id,
                "source": run.source,
                "mode": run.mode,
                "status": run.status,
                "resumed": run.resumed,
                **run.counters,
                # duplicate ids resolved within pages, free-text fields cleaned: kept per listing in the checkpoint
                "duplicates": _sum_of(run.checkpoint, "duplicates"),
                "repaired": _sum_of(run.checkpoint, "repaired"),
            },
            default=str,
        )
    )


def _sum_of(state: Any, key: str) -> int:
    """The sum of every integer ``key`` anywhere in a checkpoint (phases nest listings and day ranges)."""
    if isinstance(state, dict):
        own = state.get(key)
        return (own if isinstance(own, int) else 0) + sum(_sum_of(v, key) for k, v in state.items() if k != key)
    if isinstance(state, list):
        return sum(_sum_of(v, key) for v in state)
    return 0


def recent_calls(conn: psycopg.Connection, source: str, window_seconds: float) -> list[float]:
    """How many seconds ago each call to this tracker was made, within the window (from the call log)."""
    rows = conn.execute(
        """SELECT extract(epoch FROM clock_timestamp() - r.requested_at)::float8
           FROM closeout_data.sync_requests r
           JOIN closeout_data.sync_runs s USING (sync_run_id)
           WHERE s.source = %s AND r.requested_at > clock_timestamp() - make_interval(secs => %s)""",
        (source, window_seconds),
    ).fetchall()
    return [ago for (ago,) in rows]
