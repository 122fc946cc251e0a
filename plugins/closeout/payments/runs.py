"""One row per payments task run in ``closeout.payment_runs``: what it did and how many requests it cost."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from closeout.masking import mask_data, mask_secrets


def start(conn: psycopg.Connection, step: str, airflow_run_id: str | None) -> int:
    """Recorded and committed at once, so a run that dies still leaves its trace."""
    (run_id,) = conn.execute(
        "INSERT INTO closeout_data.payment_runs (airflow_run_id, step) VALUES (%s, %s) RETURNING payment_run_id",
        (airflow_run_id, step),
    ).fetchone()
    conn.commit()
    return run_id


def finish(
    conn: psycopg.Connection, run_id: int, *, requests: int, counts: dict[str, Any], error: str | None = None
) -> None:
    conn.rollback()  # whatever the failed step left open is not ours to keep
    conn.execute(
        """UPDATE closeout_data.payment_runs SET finished_at = clock_timestamp(), status = %s, requests = %s,
               counts = %s, error = %s WHERE payment_run_id = %s""",
        ("failed" if error else "success", requests, json.dumps(mask_data(counts), default=str), mask_secrets(error),
         run_id),
    )
    conn.commit()
