"""HarvestHook: everything about talking to Harvest API v2, and nothing else.

Auth headers on every call (Bearer token, ``Harvest-Account-Id``, a ``User-Agent`` naming us), paging
by following ``links.next`` verbatim, ``Retry-After`` on 429, backoff on 5xx and dropped
connections, and client-side pacing to the documented 100 requests per 15 s so a steady-state sync
does not hit the limit at all. Bodies are parsed with ``Decimal`` for every JSON number with a
fraction (msgspec's float hook receives the number's text): hours and rates never pass through a float.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import requests
from airflow.sdk import BaseHook

from closeout.sanitize import text_problem
from closeout.trackers.pipeline import Page
from closeout.trackers.transport import (
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

DEFAULT_USER_AGENT = "closeout time-to-cash (finance-platform@example.com)"
MAX_PER_PAGE = 2000
MAX_CONSECUTIVE_MALFORMED_PAGES = 3
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def decode(body: bytes) -> Any:
    """JSON with every fractional number as an exact Decimal.

    msgspec refuses a whole body for one lone surrogate escape (``"\\ud800"``), one NaN or one byte that
    is not UTF-8; the standard parser reads them (as the surrogate or ``Decimal('NaN')``) so the one record
    holding it is cleaned or quarantined by the normaliser, and the page's other records are stored."""
    try:
        return _DECODER.decode(body)
    except msgspec.DecodeError:
        try:
            return json.loads(body.decode("utf-8", errors="surrogateescape"), parse_float=Decimal,
                              parse_constant=Decimal)  # fmt: skip
        except (ValueError, RecursionError):
            raise msgspec.DecodeError("JSON is malformed") from None


class HarvestHook(BaseHook):
    """Owns the Harvest protocol for one ``harvest_default``-style connection.

    Connection: host = API base URL (``https://api.harvestapp.com``), password = token,
    extra ``account_id`` (required), optional ``user_agent``, ``max_requests``/``per_seconds``
    (pacing, default 100/15; 0 turns pacing off), ``per_page`` (default 2000), ``retry`` (an object
    overriding ``RetryPolicy`` fields, e.g. ``{"max_attempts": 8}``).
    """

    conn_name_attr = "harvest_conn_id"
    default_conn_name = "harvest_default"
    conn_type = "http"
    hook_name = "Harvest"

    def __init__(self, harvest_conn_id: str = default_conn_name, *, policy: RetryPolicy | None = None) -> None:
        super().__init__()
        self.harvest_conn_id = harvest_conn_id
        self.policy = policy or RetryPolicy()
        self.calls = CallLog()
        self._session: requests.Session | None = None
        self._transport: TrackerTransport | None = None
        self._base_url = ""
        self.per_page = MAX_PER_PAGE
        self._pacer = Pacer(100, 15.0)
        self.oauth: Any = None  # a TokenStore when the connection holds an OAuth grant (extra refresh_token)

    # -- connection --------------------------------------------------------------------------
    def get_conn(self) -> requests.Session:
        if self._session is not None:
            return self._session
        from closeout.connections import get_connection

        conn = get_connection(self.harvest_conn_id)
        account_id = str(conn.extra.get("account_id") or conn.login or "").strip()
        if not account_id:
            raise TrackerAPIError(f"connection {self.harvest_conn_id!r}: extra 'account_id' is required")
        if not conn.password:
            raise TrackerAPIError(f"connection {self.harvest_conn_id!r}: password (the API token) is required")
        self._base_url = conn.base_url()
        bearer = conn.password
        if conn.extra.get("refresh_token"):  # OAuth 2.0 (Harvest ID): login = client id, password = client secret
            from closeout.writeback.harvest_oauth import harvest_token_store

            if not conn.extra.get("account_id"):
                raise TrackerAPIError(f"connection {self.harvest_conn_id!r}: OAuth needs extra 'account_id'")
            self.oauth = harvest_token_store(conn, self.harvest_conn_id, account_id)
            bearer = self.oauth.access_token()
        self.per_page = max(1, min(MAX_PER_PAGE, int(conn.extra.get("per_page", MAX_PER_PAGE))))
        self._pacer = Pacer(int(conn.extra.get("max_requests", 100)), float(conn.extra.get("per_seconds", 15)))
        self.policy = self.policy.with_overrides(conn.extra.get("retry"))
        session = requests.Session()
        session.headers.update(
            {
                "Authorization": f"Bearer {bearer}",
                "Harvest-Account-Id": account_id,
                "User-Agent": str(conn.extra.get("user_agent") or DEFAULT_USER_AGENT),
                "Accept": "application/json",
            }
        )
        self._session = session
        self._transport = TrackerTransport("Harvest", session, policy=self.policy, pacer=self._pacer, calls=self.calls)
        return session

    def seed_pacing(self, sent_ago: list[float]) -> None:
        """Continue the rate window of earlier calls (seconds ago) made with the same token."""
        self.get_conn()
        self._pacer.seed(sent_ago)

    @property
    def pacing_window(self) -> float:
        self.get_conn()
        return self._pacer.per_seconds

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        self.get_conn()
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        return f"{self._base_url}/v2/{path.lstrip('/')}" + (f"?{query}" if query else "")

    # -- requests ----------------------------------------------------------------------------
    def _request(self, url: str) -> tuple[requests.Response, CallRecord]:
        """GET with pacing and retries (see ``TrackerTransport``)."""
        self.get_conn()
        assert self._transport is not None
        try:
            return self._transport.send("GET", url)
        except TrackerAPIError as exc:
            if exc.status != 401 or self.oauth is None:
                raise
            self.reauthorize()
            return self._transport.send("GET", url)

    def reauthorize(self) -> None:
        """OAuth: the access token was refused (expired or revoked); get the next one from the token store, which
        refreshes once under its row lock and commits the new refresh token before the new access token is used."""
        assert self._session is not None and self.oauth is not None
        rejected = str(self._session.headers["Authorization"]).removeprefix("Bearer ")
        self._session.headers["Authorization"] = f"Bearer {self.oauth.renew(rejected=rejected)}"

    # -- listings ----------------------------------------------------------------------------
    def iter_pages(
        self, resource: str, params: dict[str, Any] | None = None, *, start_url: str | None = None
    ) -> Iterator[Page]:
        """Pages of one listing. One page is fetched ahead, in a thread, while the caller stores the
        current one: HTTP and decoding overlap the warehouse merge. Resume stays exact because the
        caller checkpoints the ``next`` URL of each page it committed, never of a prefetched one."""
        self.get_conn()  # resolves per_page from the connection before the first URL is built
        url = start_url or self.url(resource, {"per_page": self.per_page, **(params or {})})
        consecutive_malformed = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="harvest-prefetch") as prefetch:
            pending = prefetch.submit(self._fetch_page, url, resource)
            while pending is not None:
                page = pending.result()
                if page.error:
                    consecutive_malformed += 1
                    if consecutive_malformed >= MAX_CONSECUTIVE_MALFORMED_PAGES:
                        page.next = None  # stop: the run is recorded partial and re-read next time
                else:
                    consecutive_malformed = 0
                pending = prefetch.submit(self._fetch_page, page.next, resource) if page.next else None
                try:
                    yield page
                except GeneratorExit:
                    if pending is not None:
                        pending.cancel()
                    raise

    def _fetch_page(self, url: str, resource: str) -> Page:
        number = _page_number(url)
        error = ""
        response: requests.Response | None = None
        for _attempt in range(self.policy.malformed_attempts):
            response, call = self._request(url)
            if response.status_code == 404:
                raise TrackerAPIError(f"GET {redact_url(url)}: listing not found (404)", status=404, url=url)
            try:
                body = decode(response.content)
                items = body[resource]
                if not isinstance(items, list):
                    raise TypeError(f"'{resource}' is not a list")
                links = body.get("links") or {}
                next_url = links.get("next") if isinstance(links, dict) else None
                if next_url is not None and not isinstance(next_url, str):
                    raise TypeError("links.next is not a string")
                if next_url is not None and text_problem(next_url):  # it would be followed, logged, checkpointed
                    raise ValueError(f"links.next {text_problem(next_url)}")
            except (msgspec.DecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
                error = f"malformed page: {type(exc).__name__}: {exc}"[:500]
                call.outcome = "malformed"
                log.warning("Harvest GET %s: %s", redact_url(url), error)
                continue
            call.records = len(items)
            total = body.get("total_entries")
            return Page(url, number, items, next_url, response.content, server_time=server_time(response), total=total)
        assert response is not None
        following = _with_page(url, number + 1)
        return Page(url, number, None, following, response.content, error=error, server_time=server_time(response))

    def get_time_entry(self, entry_id: int | str) -> dict[str, Any] | None:
        response, _call = self._request(self.url(f"time_entries/{entry_id}"))
        if response.status_code == 404:
            return None
        return decode(response.content)


def _page_number(url: str) -> int:
    for key, value in parse_qsl(urlsplit(url).query):
        if key == "page" and value.isdigit():
            return int(value)
    return 1


def _with_page(url: str, number: int) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "page"] + [("page", str(number))]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
