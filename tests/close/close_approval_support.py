"""A finance person answering the close's held-drafts approval through the real Airflow REST API (Required
Actions), while ``dag.test`` waits at ``approve_held_drafts``: lists the pending request, notes what the warehouse and
Stripe looked like at that moment, then lets each of ``tries`` answer in turn (user, choice), noting the HTTP
status each got. If anything goes wrong, or nobody's answer was accepted, it fails the waiting run through the API
so that ``dag.test`` returns instead of waiting for ever. With no ``tries`` it is a watchdog for a close that must not
wait: ``stop()`` it after the run; a request it saw (``request``) is a failure, and it ended that run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests

DAG_ID = "closeout_month_end_close"
TASK_ID = "approve_held_drafts"
WAIT = 300.0
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}


class Answerer(threading.Thread):
    def __init__(self, url: str, headers: Callable[[str], dict[str, str]], watcher: str,
                 tries: list[tuple[str, str]], look: Callable[[], Any] | None = None) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.url, self.headers, self.watcher, self.tries, self.look = url, headers, watcher, tries, look
        self.request: dict[str, Any] = {}
        self.statuses: list[tuple[str, int]] = []
        self.pending_after: list[bool] = []  # after each try: is the request still waiting for an answer?
        self.seen: Any = None
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def run(self) -> None:
        run_id = None
        try:
            self.request = self._pending()
            if not self.request:  # stopped before any request appeared
                return
            run_id = self.request["task_instance"]["dag_run_id"]
            self.seen = self.look() if self.look else None
            url = f"{self.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/-1/hitlDetails"
            for user, choice in self.tries:
                response = requests.patch(url, json={"chosen_options": [choice]}, headers=self.headers(user),
                                          timeout=30)  # fmt: skip
                self.statuses.append((user, response.status_code))
                detail = requests.get(url, headers=self.headers(self.watcher), timeout=30)
                assert detail.status_code == 200, detail.text
                self.pending_after.append(not detail.json()["response_received"])
        except BaseException as exc:
            self.error = exc
        finally:
            if self.error is not None or (self.request and not any(code == 200 for _, code in self.statuses)):
                self._fail(run_id)

    def _pending(self) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not self._halt.is_set():
            response = requests.get(f"{self.url}/api/v2/dags/{DAG_ID}/dagRuns/~/hitlDetails",
                                    params={"response_received": "false", "task_id": TASK_ID},
                                    headers=self.headers(self.watcher), timeout=30)  # fmt: skip
            assert response.status_code == 200, response.text
            pending = [d for d in response.json()["hitl_details"] if not d["response_received"]
                       and d["task_instance"].get("state") not in FINISHED]  # an earlier test's failed run: not ours
            if pending:
                assert len(pending) == 1, pending
                return pending[0]
            self._halt.wait(1)
        if self._halt.is_set():
            return {}
        raise AssertionError(f"no held-drafts approval appeared within {WAIT}s")

    def _fail(self, run_id: str | None) -> None:
        headers = self.headers(self.watcher)
        listed = requests.get(f"{self.url}/api/v2/dags/{DAG_ID}/dagRuns", params={"state": "running"},
                              headers=headers, timeout=30).json().get("dag_runs", [])  # fmt: skip
        for run in {run_id, *(r["dag_run_id"] for r in listed)} - {None}:
            requests.patch(f"{self.url}/api/v2/dags/{DAG_ID}/dagRuns/{run}", json={"state": "failed"},
                           headers=headers, timeout=30)  # fmt: skip

    def finish(self, timeout: float = 60) -> None:
        self._halt.set()  # the run is over: a request that never appeared is no longer awaited
        self.join(timeout)
        if self.error is not None:
            raise self.error
