"""ClockifyHook: the Clockify protocol (REST API v1 + Reports API), and nothing else.

Base URLs come from the connection (regional hosts exist): ``host`` ends in ``/api/v1``, extra
``reports_url`` ends in ``/v1``. Limits: paid workspaces 50 requests per second (paced, never a
stop), new free workspaces 30 per hour - planned like Toggl's quota: the run stops cleanly when the
hour's budget is spent and the next run continues it.
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
from closeout.trackers.transport import CallLog, Pacer, RetryPolicy, TrackerAPIError, TrackerTransport, server_time

log = logging.getLogger(__name__)

MAX_REPORT_PAGE = 1000
MAX_LIST_PAGE = 5000
LIMITS = {"paid": (50, 1.0), "free": (30, 3600.0)}


class ClockifyHook(BaseHook):
    """Connection: host = API base URL ending in ``/api/v1``, password = API key, extra
    ``workspace_id`` (required), ``reports_url`` (ending in ``/v1``; required), ``limit`` (``paid`` or
    ``free``; default ``paid``) or ``max_requests``/``per_seconds``, ``page_size`` (report, default 1000),
    ``retry`` (RetryPolicy overrides)."""

    conn_name_attr = "clockify_conn_id"
    default_conn_name = "clockify_default"
    conn_type = "http"
    hook_name = "Clockify"

    def __init__(self, clockify_conn_id: str = default_conn_name, *, policy: RetryPolicy | None = None) -> None:
        super().__init__()
        self.clockify_conn_id = clockify_conn_id
        self.policy = policy or RetryPolicy()
        self.calls = CallLog()
        self._transport: TrackerTransport | None = None
        self._base = self._reports = self.workspace_id = ""
        self.page_size = MAX_REPORT_PAGE
        self._window = 1.0

    def get_conn(self) -> TrackerTransport:
        if self._transport is not None:
            return self._transport
        from closeout.connections import get_connection

        conn = get_connection(self.clockify_conn_id)
        self.workspace_id = str(conn.extra.get("workspace_id") or "").strip()
        reports = str(conn.extra.get("reports_url") or "").rstrip("/")
        if not self.workspace_id or not reports:
            raise TrackerAPIError(f"connection {self.clockify_conn_id!r}: extras 'workspace_id' and 'reports_url' "
                                  "are required")  # fmt: skip
        if not conn.password:
            raise TrackerAPIError(f"connection {self.clockify_conn_id!r}: password (the API key) is required")
        self._base, self._reports = conn.base_url(), reports
        self.page_size = max(1, min(MAX_REPORT_PAGE, int(conn.extra.get("page_size", MAX_REPORT_PAGE))))
        limit, window = LIMITS.get(str(conn.extra.get("limit", "paid")), LIMITS["paid"])
        limit = int(conn.extra.get("max_requests", limit))
        self._window = float(conn.extra.get("per_seconds", window))
        session = requests.Session()
        session.headers.update({"X-Api-Key": conn.password, "Accept": "application/json",
                                "User-Agent": "closeout time-to-cash"})  # fmt: skip
        self._transport = TrackerTransport(
            "Clockify", session,
            policy=self.policy.with_overrides(conn.extra.get("retry")),
            pacer=Pacer(limit, self._window),
            calls=self.calls,
            max_pacing_wait=60.0,  # an hourly plan limit stops the run instead of sleeping for an hour
        )  # fmt: skip
        return self._transport

    @property
    def pacing_window(self) -> float:
        self.get_conn()
        return self._window

    def seed_pacing(self, sent_ago: list[float]) -> None:
        self.get_conn().pacer.seed(sent_ago)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.session.close()
            self._transport = None

    def get_json(self, path: str) -> Any:
        transport = self.get_conn()
        url = f"{self._base}/{path.lstrip('/')}"
        response, _call = transport.send("GET", url)
        if response.status_code == 404:
            raise TrackerAPIError(f"GET {url}: not found", status=404, url=url)
        return decode(response.content)

    def workspace(self) -> dict[str, Any]:
        self.get_conn()
        for ws in self.get_json("workspaces") or []:
            if isinstance(ws, dict) and ws.get("id") == self.workspace_id:
                return ws
        raise TrackerAPIError(f"workspace {self.workspace_id} is not visible to this API key")

    def listing(self, resource: str) -> list[dict[str, Any]]:
        """users, clients or projects of the workspace, every page (a short page is the last)."""
        self.get_conn()
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            items = self.get_json(f"workspaces/{self.workspace_id}/{resource}?page={page}&page-size={MAX_LIST_PAGE}")
            if not isinstance(items, list):
                break
            out.extend(items)
            if len(items) < MAX_LIST_PAGE:
                return out
            page += 1
        return out

    def report_pages(self, first: date, last: date, token: int | None = None) -> Iterator[Page]:
        """Detailed report items for [first, last], every state of approval and invoicing;
        ``Page.next`` is the next page number."""
        transport = self.get_conn()
        url = f"{self._reports}/workspaces/{self.workspace_id}/reports/detailed"
        page = token or 1
        unreadable = 0
        while True:
            body = {
                "dateRangeStart": f"{first.isoformat()}T00:00:00.000Z",
                "dateRangeEnd": f"{last.isoformat()}T23:59:59.999Z",
                "detailedFilter": {"page": page, "pageSize": self.page_size, "sortColumn": "DATE"},
                "approvalState": "ALL",
                "invoicingState": "ALL",
                "rounding": False,
                "amountShown": "EARNED",
            }
            result = self._report_page(transport, url, page, body)
            unreadable = unreadable + 1 if result.error else 0
            if unreadable >= 3:
                result.next = None  # three unreadable pages in a row: stop; the run is partial, re-listed later
            yield result
            if result.next is None:
                return
            page = result.next

    def _report_page(self, transport: TrackerTransport, url: str, page: int, body: dict[str, Any]) -> Page:
        error = ""
        response: requests.Response | None = None
        for _attempt in range(self.policy.malformed_attempts):
            response, call = transport.send("POST", url, json_body=body)
            try:
                items = decode(response.content)["timeentries"]
                if not isinstance(items, list):
                    raise TypeError("timeentries is not a list")
            except (msgspec.DecodeError, ValueError, TypeError, KeyError) as exc:
                error = f"malformed page: {type(exc).__name__}: {exc}"[:500]
                call.outcome = "malformed"
                log.warning("Clockify report page %d: %s", page, error)
                continue
            call.records = len(items)  # the call log (closeout.sync_requests) says what each page brought
            following = page + 1 if len(items) >= self.page_size else None
            return Page(
                f"{url}#page={page}", page, items, following, response.content, server_time=server_time(response)
            )
        assert response is not None
        # page numbers are known: skip the unreadable page (quarantined, run partial) and go on
        return Page(f"{url}#page={page}", page, None, page + 1, response.content, error=error)
