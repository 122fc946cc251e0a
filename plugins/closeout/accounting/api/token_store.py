"""The rotating OAuth tokens of one accounting connection, kept in ``closeout_data.accounting_oauth``.

Why the warehouse and not the Airflow connection: QuickBooks and Xero hand out a new refresh token with every
refresh and retire the old one, and every worker of every task must see the newest at once. The connection's
``refresh_token`` extra is only the first link of the chain (and the way a person restarts it after a reconnect).

The rules, each for a failure that happened to someone:

* **Store before use.** A refresh runs inside a transaction holding the connection's row ``FOR UPDATE``; the
  answer is written and committed before the new access token leaves this module. A worker killed between the
  token endpoint's answer and that commit leaves the previous refresh token in the row (what the vendor then
  accepts is its grace: docs/accounting-api.md).
* **One refresh at a time.** A second task (thread, process, worker) that needs a token waits on the row lock
  (bounded: ``CLOSEOUT_LOCK_WAIT_SECONDS``), then finds the access token the first one stored and uses it:
  the same refresh token is never sent twice.
* **Refresh only what failed.** After a 401 the caller passes the access token that was refused; if the row
  already holds a different one, someone refreshed meanwhile and that one is returned instead.
* **Reconnect restarts the chain.** When the connection's ``refresh_token`` differs from the one the row was
  seeded from (by hash), a person reconnected the company: the row starts again from the connection's token.
* **No secret in logs or errors.** Log lines name the connection and the refresh count, never a token.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

import psycopg
import requests

from closeout.accounting.api.oauth import OAuthClient, OAuthError, ReconnectRequired, TokenGrant, exchange_refresh_token
from closeout.locks import LockBusy, wait_seconds
from closeout.masking import mask_secrets
from closeout.paths import load_sql
from closeout.warehouse.db import connect

log = logging.getLogger(__name__)

# Refresh this long before the stored expiry: a token handed out must outlive the request it is used for.
DEFAULT_MARGIN_SECONDS = 120.0

Exchange = Callable[[str], TokenGrant]


def seed_hash(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


class TokenStore:
    """Hands out a valid access token for one connection, refreshing (once, under the row lock) when needed.

    ``access_token()`` is cheap: a per-instance cache, then one unlocked read of the row. Thread-safe; one
    instance per hook."""

    def __init__(
        self,
        client: OAuthClient,
        *,
        session: requests.Session | None = None,
        margin_seconds: float = DEFAULT_MARGIN_SECONDS,
        lock_wait: float | None = None,
        warehouse_conn_id: str = "closeout_warehouse",
    ) -> None:
        self.client = client
        self.margin_seconds = float(margin_seconds)
        self.lock_wait = wait_seconds() if lock_wait is None else float(lock_wait)
        self.warehouse_conn_id = warehouse_conn_id
        self._session = session or requests.Session()
        self._seed_sha = seed_hash(client.seed_refresh_token)
        self._lock = threading.Lock()
        self._cached: str | None = None
        self._cached_until = 0.0
        self.refreshes = 0  # refreshes this instance performed (tests and run summaries)

    # -- public -------------------------------------------------------------------------------------
    def access_token(self) -> str:
        """A stored access token good for at least the margin, else a freshly refreshed one."""
        with self._lock:
            if self._cached is not None and time.monotonic() < self._cached_until:
                return self._cached
        with connect(self.warehouse_conn_id, autocommit=True) as conn:
            params = {"conn_id": self.client.conn_id, "margin_seconds": self.margin_seconds}
            row = conn.execute(load_sql("accounting_api/oauth_peek.sql"), params).fetchone()
        if row is not None and row[1] and row[0] and row[2] == self._seed_sha:
            self._remember(row[0], float(row[3]))
            return row[0]
        return self.renew(rejected=None)

    def renew(self, rejected: str | None) -> str:
        """Refresh under the row lock, unless the row holds a usable access token other than ``rejected`` (another
        task refreshed while we waited or while our token was being refused). Returns the token to use."""
        with self._lock:
            self._cached = None
        with connect(self.warehouse_conn_id) as conn:
            try:
                token = self._renew_locked(conn, rejected)
            except BaseException:
                conn.rollback()
                raise
        return token

    def forget(self) -> None:
        """Drop the in-process cache (the next call reads the warehouse)."""
        with self._lock:
            self._cached = None

    # -- inside the row lock ------------------------------------------------------------------------
    def _renew_locked(self, conn: psycopg.Connection, rejected: str | None) -> str:
        client = self.client
        params = {"conn_id": client.conn_id, "system": client.system, "company_id": client.company_id,
                  "refresh_token": client.seed_refresh_token, "seed_sha256": self._seed_sha,
                  "margin_seconds": self.margin_seconds}  # fmt: skip
        row = self._lock_row(conn, params)
        if row is None:  # the first refresh ever: seed from the connection (a concurrent seeder wins quietly)
            conn.execute(load_sql("accounting_api/oauth_seed.sql"), params)
            conn.commit()
            row = self._lock_row(conn, params)
        if row is None:  # deleted between the seed and the lock: a person reset it; the task's retry reseeds
            raise OAuthError(f"token row of {client.conn_id!r} vanished during refresh; retry", status=None,
                             retryable=True)  # fmt: skip
        system, company_id, refresh_token, stored_seed, access, fresh, seconds_left = row
        if system != client.system:
            raise OAuthError(f"connection {client.conn_id!r} holds {system} tokens, not {client.system}",
                             status=None, retryable=False)  # fmt: skip
        if stored_seed != self._seed_sha or company_id != client.company_id:
            log.warning("connection %s has a new first refresh token (reconnected): starting the token chain again "
                        "from it", client.conn_id)  # fmt: skip
            conn.execute(load_sql("accounting_api/oauth_reseed.sql"), params)
            refresh_token, access, fresh = client.seed_refresh_token, None, False
        if fresh and access and access != rejected:
            conn.commit()
            self._remember(access, float(seconds_left))  # another task refreshed while we waited: use theirs
            return access
        try:
            grant = exchange_refresh_token(self._session, client, refresh_token)
        except ReconnectRequired as exc:
            conn.execute(load_sql("accounting_api/oauth_failed.sql"),
                         {"conn_id": client.conn_id, "error": self._mask(str(exc), refresh_token)[:2000]})  # fmt: skip
            conn.commit()
            log.error("connection %s: %s", client.conn_id, self._mask(str(exc), refresh_token))
            raise
        stored = conn.execute(load_sql("accounting_api/oauth_store.sql"), {
            "conn_id": client.conn_id, "refresh_token": grant.refresh_token, "access_token": grant.access_token,
            "expires_in": grant.expires_in, "refresh_expires_in": grant.refresh_expires_in}).fetchone()  # fmt: skip
        conn.commit()  # durable before the new access token is used anywhere
        self.refreshes += 1
        log.info("refreshed %s tokens of connection %s (refresh #%s, access token valid %.0f s)",
                 client.system, client.conn_id, stored[0] if stored else "?", grant.expires_in)  # fmt: skip
        self._remember(grant.access_token, grant.expires_in)
        return grant.access_token

    def _lock_row(self, conn: psycopg.Connection, params: dict[str, object]) -> tuple | None:
        """The connection's row, locked FOR UPDATE within the bounded wait (only reads until the lock is held:
        nothing here writes before it, so a waiting task never blocks anyone else)."""
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{max(self.lock_wait, 0.001) * 1000:.0f}ms",))
        try:
            return conn.execute(load_sql("accounting_api/oauth_lock.sql"), params).fetchone()
        except psycopg.errors.LockNotAvailable:
            raise LockBusy(
                f"the OAuth token row of connection {self.client.conn_id!r} is still locked by another task's "
                f"refresh after {self.lock_wait:g} s; this task fails and Airflow retries it",
                lock=f"accounting_oauth:{self.client.conn_id}",
                holders=[],
            ) from None

    def _remember(self, access: str, seconds_left: float) -> None:
        with self._lock:
            self._cached = access
            self._cached_until = time.monotonic() + max(0.0, seconds_left - self.margin_seconds)

    def _mask(self, text: str, *tokens: str) -> str:
        return mask_secrets(mask_secrets(text, [self.client.client_secret, self.client.seed_refresh_token, *tokens]))
