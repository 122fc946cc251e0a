"""Harvest ID's OAuth 2.0 for the sandbox: the authorization-code grant and rotating refresh tokens.

Harvest ID (``https://id.getharvest.com``) serves ``POST /api/v2/oauth2/token``: ``grant_type=authorization_code``
trades the one-time code a person's consent produced for an access token and a refresh token; ``grant_type=
refresh_token`` trades a refresh token for a new pair. The client authenticates with ``client_id`` and
``client_secret`` in the form (Harvest's documented way) or with HTTP Basic. Access tokens then open the API of
the accounts the grant covers exactly as a personal access token does (``Authorization: Bearer``).

The sandbox rotates refresh tokens on every use (the old one answers ``invalid_grant``), which is stricter than
Harvest and is what makes "store the new refresh token before using the new access token" testable. Consent is
a helper (``authorize``): there is no browser here, only the code a redirect would carry.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["HarvestID"]

TOKEN_PATH = "/api/v2/oauth2/token"
ACCESS_SECONDS = 1_209_600  # Harvest: access tokens last 14 days


class HarvestID:
    """Clients, codes and tokens of the sandbox's Harvest ID; shares nothing with the API but ``accepts``."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.clients: dict[str, dict[str, str]] = {}
        self._codes: dict[str, tuple[str, str]] = {}  # code -> (client_id, account_id)
        self._access: dict[str, tuple[str, float]] = {}  # access token -> (account_id, expires at)
        self._refresh: dict[str, tuple[str, str]] = {}  # live refresh token -> (client_id, account_id)
        self.access_seconds = ACCESS_SECONDS
        self.grants: list[str] = []  # grant types served, in order (tests count refreshes)

    def register_client(self, client_id: str = "closeout-client", client_secret: str = "closeout-secret",  # noqa: S107
                        redirect_uri: str = "https://closeout.example/oauth/harvest") -> dict[str, str]:  # fmt: skip
        """An OAuth2 application as created at id.getharvest.com/developers."""
        with self._lock:
            self.clients[client_id] = {"client_secret": client_secret, "redirect_uri": redirect_uri}
        return {"client_id": client_id, "client_secret": client_secret, "redirect_uri": redirect_uri}

    def authorize(self, client_id: str, account_id: str) -> str:
        """What a person's consent at Harvest ID yields: a one-time authorization code (the redirect's ``code``)."""
        with self._lock:
            if client_id not in self.clients:
                raise KeyError(client_id)
            code = "code-" + secrets.token_urlsafe(12)
            self._codes[code] = (client_id, str(account_id))
            return code

    def accepts(self, authorization: str) -> str | None:
        """The account an ``Authorization: Bearer`` access token opens, or None (unknown or expired)."""
        if not authorization.startswith("Bearer "):
            return None
        with self._lock:
            found = self._access.get(authorization[7:])
        if found is None or found[1] <= self._clock():
            return None
        return found[0]

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires now (the next API call answers 401)."""
        with self._lock:
            self._access = {token: (account, 0.0) for token, (account, _) in self._access.items()}

    def revoke_refresh_tokens(self) -> None:
        """A person disconnected the app: every refresh token is dead (``invalid_grant``)."""
        with self._lock:
            self._refresh.clear()

    def live_refresh_tokens(self) -> int:
        with self._lock:
            return len(self._refresh)

    # -- HTTP --------------------------------------------------------------------------------------
    def token(self, headers: Any, body: bytes) -> tuple[int, bytes, list[tuple[str, str]]]:
        """``POST /api/v2/oauth2/token``: form (or JSON) body, client credentials in the body or as Basic."""
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            form: dict[str, Any] = (json.loads(body or b"{}") if content_type == "application/json"
                                    else dict(parse_qsl(body.decode(), keep_blank_values=True)))  # fmt: skip
        except (ValueError, UnicodeDecodeError):
            return _error(400, "invalid_request", "The request body could not be read.")
        basic = headers.get("Authorization") or ""
        if basic.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return _error(401, "invalid_client", "Client authentication failed.")
            form.setdefault("client_id", user)
            form.setdefault("client_secret", password)
        client_id, secret = str(form.get("client_id") or ""), str(form.get("client_secret") or "")
        with self._lock:
            client = self.clients.get(client_id)
            if client is None or not secrets.compare_digest(client["client_secret"], secret):
                return _error(401, "invalid_client", "Client authentication failed.")
            grant = form.get("grant_type")
            if grant == "authorization_code":
                found = self._codes.pop(str(form.get("code") or ""), None)
                if found is None or found[0] != client_id:
                    return _error(400, "invalid_grant", "The authorization code is invalid, expired or used.")
                account_id = found[1]
            elif grant == "refresh_token":
                found = self._refresh.pop(str(form.get("refresh_token") or ""), None)
                if found is None or found[0] != client_id:
                    return _error(400, "invalid_grant", "The refresh token is invalid, expired or revoked.")
                account_id = found[1]
            else:
                return _error(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token.")
            access, refresh = "hvacc-" + secrets.token_urlsafe(18), "hvref-" + secrets.token_urlsafe(18)
            self._access[access] = (account_id, self._clock() + self.access_seconds)
            self._refresh[refresh] = (client_id, account_id)
            self.grants.append(str(grant))
        answer = {"access_token": access, "refresh_token": refresh, "token_type": "bearer",
                  "expires_in": self.access_seconds}  # fmt: skip
        return 200, json.dumps(answer).encode(), [("Cache-Control", "no-store")]


def _error(status: int, error: str, description: str) -> tuple[int, bytes, list[tuple[str, str]]]:
    return status, json.dumps({"error": error, "error_description": description}).encode(), []
