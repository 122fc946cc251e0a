"""The close's link on its Airflow run: the run's note, set through the public REST API.

Airflow 3 tasks cannot write the metadata database, so the note goes the way any client would set it:
``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}?update_mask=note`` on the API server of the ``airflow_api``
connection (the same one the payout gate pauses DAGs with). Without a reachable API server (``dag.test``, a
deployment without that connection) the close carries on and says so in the task log: the link is also in the
close run's row (``closeout.period_closes.report_url``) and in the task log.

A note names artifacts by their link, never by a worker's path or a bare ``s3://`` location: every artifact location
in the text goes through the artifact store's link function (``closeout.artifacts.link_text``: an https base,
a presigned URL, or ``file://`` for a local base). Airflow keeps at most 1000 characters of a note; when the link
makes it longer (a presigned URL with a session token), the note names the location and where the link is.
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


NOTE_LIMIT = 1000  # Airflow's dag_run_note.content and the REST API's note field


def linked_note(note: str) -> str:
    """The note with its artifact locations as links (``closeout.artifacts.link_text``), within Airflow's limit."""
    from closeout.artifacts import link_text

    linked = link_text(note)
    if len(linked) <= NOTE_LIMIT:
        return linked
    log.info("run note with links (too long for Airflow's note, which names the location instead): %s", linked)
    shorter = f"{note} (the link is too long for a run note: it is in the log of the task that set this note)"
    return shorter if len(shorter) <= NOTE_LIMIT else note[:NOTE_LIMIT]


def set_run_note(run_id: str, note: str, *, dag_id: str = DAG_ID, conn_id: str = AIRFLOW_API_CONN_ID) -> bool:
    """Set the note, artifacts linked (:func:`linked_note`); False (with a logged warning) when no API server can
    take it."""
    try:
        note = linked_note(note)
    except Exception as exc:  # a store that gives no links: the note still says where the report is
        log.warning("artifact links for the note of run %s: %s: %s", run_id, type(exc).__name__, exc)
    try:
        RunNotes(conn_id, timeout=10).set_note(dag_id, run_id, note)
    except Exception as exc:  # a missing connection, no server, a refusal: the close itself is done
        log.warning("could not set the note of run %s through the Airflow API (%s): %s; the report link is in "
                    "closeout.period_closes and in this log", run_id, type(exc).__name__, exc)  # fmt: skip
        return False
    log.info("run %s note set: %s", run_id, note)
    return True
