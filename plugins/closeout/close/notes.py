"""The close's link on its Airflow run: the run's note, set through the public REST API.

Airflow 3 tasks cannot write the metadata database, so the note goes the way any client would set it:
``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}?update_mask=note`` on the API server of the ``airflow_api``
connection (the same one the payout gate pauses DAGs with). Without a reachable API server (``dag.test``, a
deployment without that connection) the close carries on and says so in the task log: the link is also in the
close run's row (``closeout.period_closes.report_url``) and in the task log.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from closeout.gate.airflow_api import AIRFLOW_API_CONN_ID, AirflowApiHook

log = logging.getLogger(__name__)

DAG_ID = "closeout_month_end_close"


class RunNotes(AirflowApiHook):
    """The DAG-run calls on top of the gate's API client (token handling, errors without secrets)."""

    def set_note(self, dag_id: str, run_id: str, note: str) -> None:
        self._request("PATCH", f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}",
                      params={"update_mask": "note"}, json={"note": note})  # fmt: skip

    def note(self, dag_id: str, run_id: str) -> str | None:
        path = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
        return self._request("GET", path).json().get("note")


def set_run_note(run_id: str, note: str, *, dag_id: str = DAG_ID, conn_id: str = AIRFLOW_API_CONN_ID) -> bool:
    """Set the note; False (with a logged warning) when no API server can take it."""
    try:
        RunNotes(conn_id, timeout=10).set_note(dag_id, run_id, note)
    except Exception as exc:  # a missing connection, no server, a refusal: the close itself is done
        log.warning("could not set the note of run %s through the Airflow API (%s): %s; the report link is in "
                    "closeout.period_closes and in this log", run_id, type(exc).__name__, exc)  # fmt: skip
        return False
    log.info("run %s note set: %s", run_id, note)
    return True
