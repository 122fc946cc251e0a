"""TogglHook: the Toggl Track protocol (API v9 + Reports API v3), and nothing else.

Toggl is the tightest budget of the three trackers: a per-hour quota by plan (30 / 240 / 600 requests)
answered with 402 and ``X-Toggl-Quota-*`` headers when spent, plus a short-term limit answered with
429. The hook plans in requests per hour: it counts its own calls against the plan's quota (seeded
from the persisted call log, so the count spans tasks and runs), reads the remaining quota from every
answer, and raises ``BudgetExhausted`` *before* a call that would not be paid for. The capture loop
then stops cleanly and the next run continues from the last committed page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date
from typing import Any

import msgspec
import requests
from airflow.sdk import BaseHook

from closeout.trackers.harvest.hook import decode
from closeout.trackers.pipeline import Page
from closeout.trackers.transport import (
    BudgetExhausted,
    CallLog,
    CallRecord,
    Pacer,
    RetryPolicy,
    TrackerAPIError,
    TrackerTransport,
    redact_url,
    server_time,
)

log = logging.getLogger(__name__)

MAX_REPORT_PAGE = 1000


class TogglHook(BaseHook):
    """Connection: host = API base URL (``https://api.track.toggl.com``), password = API token,
    extra ``workspace_id`` (required), ``requests_per_hour`` (the plan's quota: 30, 240 or 600;
    default 240), ``short_term`` ``[burst, seconds]`` (default ``[3, 3]``; ``[0, 1]`` = off),
    ``page_size`` (report rows per page, default 1000), ``retry`` (RetryPolicy overrides)."""

    conn_name_attr = "toggl_conn_id"
    default_conn_name = "toggl_default"
    conn_type = "http"
    hook_name = "Toggl Track"

    def __init__(self, toggl_conn_id: str = default_conn_name, *, policy: RetryPolicy | None = None) -> None:
        super().__init__()
        self.toggl_conn_id = toggl_conn_id
        self.policy = policy or RetryPolicy()
        self.calls = CallLog()
        self.quota_remaining: int | None = None
        self._transport: TrackerTransport | None = None
        self._base = ""
        self.workspace_id = ""
        self.page_size = MAX_REPORT_PAGE
        self.requests_per_hour = 240

    def get_conn(self) -> TrackerTransport:
        if self._transport is not None:
            return self._transport
        from closeout.connections import get_connection

        conn = get_connection(self.toggl_conn_id)
        self.workspace_id = str(conn.extra.get("workspace_id") or "").strip()
        if not self.workspace_id:
            raise TrackerAPIError(f"connection {self.toggl_conn_id!r}: extra 'workspace_id' is required")
        if not conn.password:
            raise TrackerAPIError(f"connection {self.toggl_conn_id!r}: password (the API token) is required")
        self._base = conn.base_url()
        self.page_size = max(1, min(MAX_REPORT_PAGE, int(conn.extra.get("page_size", MAX_REPORT_PAGE))))
        self.requests_per_hour = int(conn.extra.get("requests_per_hour", 240))
        burst, seconds = conn.extra.get("short_term", [3, 3])
        session = requests.Session()
        session.auth = (conn.password, "api_token")  # Toggl's documented Basic form: <token>:api_token
        session.headers.update({"Accept": "application/json", "User-Agent": "closeout time-to-cash"})
        self._transport = TrackerTransport(
            "Toggl", session,
            policy=self.policy.with_overrides(conn.extra.get("retry")),
            pacer=Pacer(self.requests_per_hour, 3600.0),  # the plan's hourly quota, counted by us
            calls=self.calls,
            inspect=self._read_quota,
            max_pacing_wait=60.0,  # never sleep into the next hour: stop and continue next run
            extra_pacers=(Pacer(int(burst), float(seconds)),),
        )  # fmt: skip
        return self._transport

    @property
    def pacing_window(self) -> float:
        return 3600.0

    def seed_pacing(self, sent_ago: list[float]) -> None:
        self.get_conn().pacer.seed(sent_ago)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.session.close()
            self._transport = None

    def _read_quota(self, response: requests.Response) -> None:
        remaining = response.headers.get("X-Toggl-Quota-Remaining")
        resets_in = response.headers.get("X-Toggl-Quota-Resets-In")
        if remaining is not None and remaining.strip().lstrip("-").isdigit():
            self.quota_remaining = int(remaining)
        if response.status_code == 402:
            wait = float(resets_in) if resets_in and resets_in.strip().isdigit() else None
            raise BudgetExhausted("Toggl hourly quota spent (402)", resets_in=wait)

    def _send(self, method: str, url: str, body: Any = None) -> tuple[requests.Response, CallRecord]:
        transport = self.get_conn()
        if self.quota_remaining is not None and self.quota_remaining <= 0:
            raise BudgetExhausted("Toggl hourly quota spent (X-Toggl-Quota-Remaining: 0)")
        return transport.send(method, url, json_body=body)

    # -- API v9 ------------------------------------------------------------------------------------
    def api_url(self, path: str) -> str:
        self.get_conn()
        return f"{self._base}/api/v9/{path.lstrip('/')}"

    def get_json(self, path: str) -> Any:
        url = self.api_url(path)
        response, _call = self._send("GET", url)
        if response.status_code == 404:
            raise TrackerAPIError(f"GET {redact_url(url)}: not found", status=404, url=url)
        return decode(response.content)

    def workspace(self) -> dict[str, Any]:
        return self.get_json(f"workspaces/{self.workspace_id or self._workspace_id()}")

    def _workspace_id(self) -> str:
        self.get_conn()
        return self.workspace_id

    def reference(self, kind: str) -> list[dict[str, Any]]:
        """clients, projects (paged), tasks or users of the workspace."""
        wid = self._workspace_id()
        if kind != "projects":
            items = self.get_json(f"workspaces/{wid}/{kind}")
            return items if isinstance(items, list) else []
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            items = self.get_json(f"workspaces/{wid}/projects?page={page}&per_page=200")
            if not isinstance(items, list):
                break
            out.extend(items)
            if len(items) < 200:
                break
            page += 1
        return out

    # -- Reports API v3 ------------------------------------------------------------------------------
    def report_pages(self, start: date, end: date, token: dict[str, int] | None = None) -> Iterator[Page]:
        """Grouped report rows for [start, end], page by page; ``Page.next`` is the
        ``{first_id, first_row_number}`` pair that continues after the page."""
        wid = self._workspace_id()
        url = f"{self._base}/reports/api/v3/workspace/{wid}/search/time_entries"
        number = 0
        while True:
            number += 1
            body = {"start_date": start.isoformat(), "end_date": end.isoformat(), "page_size": self.page_size,
                    **(token or {})}  # fmt: skip
            page = self._report_page(url, number, body)
            yield page
            if page.next is None:
                return
            token = page.next

    def _report_page(self, url: str, number: int, body: dict[str, Any]) -> Page:
        error = ""
        response: requests.Response | None = None
        for _attempt in range(self.policy.malformed_attempts):
            response, call = self._send("POST", url, body)
            try:
                rows = decode(response.content)
                if not isinstance(rows, list):
                    raise TypeError("report body is not a list of rows")
                next_id, next_row = response.headers.get("X-Next-ID"), response.headers.get("X-Next-Row-Number")
                following = ({"first_id": int(next_id), "first_row_number": int(next_row)}
                             if next_id and next_row else None)  # fmt: skip
            except (msgspec.DecodeError, ValueError, TypeError) as exc:
                error = f"malformed page: {type(exc).__name__}: {exc}"[:500]
                call.outcome = "malformed"
                log.warning("Toggl report page %d: %s", number, error)
                continue
            # the call log (closeout.sync_requests) says how many time entries each page brought (rows group them)
            call.records = sum(len(r["time_entries"]) if isinstance(r, dict) and isinstance(r.get("time_entries"),
                               list) else 1 for r in rows)  # fmt: skip
            return Page(f"{url}#{body}", number, rows, following, response.content, server_time=server_time(response))
        assert response is not None
        # a malformed page cannot tell where the next one starts: stop here; the run is partial and
        # the window is listed again next run
        return Page(f"{url}#{body}", number, None, None, response.content, error=error)
