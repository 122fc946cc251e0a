"""The OAuth 2.0 refresh-token grant, as QuickBooks Online and Xero both speak it.

One call, one answer: ``exchange_refresh_token`` posts ``grant_type=refresh_token`` with the client id and secret
as HTTP Basic and returns the new token set. Nothing here stores anything: the caller (``token_store``) holds the
connection's row lock around the call and commits the answer before anyone uses the new access token.

Failures come in two kinds, because they need different people: ``ReconnectRequired`` (``invalid_grant``: the
refresh token is dead - expired, revoked, or rotated away and lost; only a person reconnecting the company can fix
it) and ``OAuthError`` (the token endpoint is down or refused the client: retrying later may help, or the platform
team fixes the client id/secret).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from closeout.masking import mask_secrets


class OAuthError(RuntimeError):
    """The token endpoint failed or refused the client; ``retryable`` when trying again later can help."""

    def __init__(self, message: str, *, status: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class ReconnectRequired(OAuthError):
    """The stored refresh token is dead (``invalid_grant``): a person must reconnect the company and put the new
    refresh token into the Airflow connection's ``refresh_token`` extra; closeout then starts again from it."""

    def __init__(self, message: str, *, status: int | None = 400) -> None:
        super().__init__(message, status=status, retryable=False)


@dataclass(frozen=True)
class TokenGrant:
    """A token endpoint's answer. Tokens are kept out of ``repr`` so a stray log line cannot print them."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: float
    refresh_expires_in: float | None


@dataclass(frozen=True)
class OAuthClient:
    """Who asks for tokens, where, and for which company. The secret stays out of ``repr``."""

    system: str
    conn_id: str
    company_id: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    seed_refresh_token: str = field(repr=False)
    timeout: float = 30.0


def exchange_refresh_token(session: requests.Session, client: OAuthClient, refresh_token: str) -> TokenGrant:
    """Trade ``refresh_token`` for a new token set (the refresh token in the answer replaces the one sent)."""
    secrets = (client.client_secret, refresh_token)
    try:
        response = session.post(
            client.token_url,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client.client_id, client.client_secret),
            headers={"Accept": "application/json"},
            timeout=client.timeout,
        )
    except requests.RequestException as exc:
        raise OAuthError(f"{client.system} token endpoint unreachable: {mask_secrets(exc, secrets)}",
                         status=None, retryable=True) from None  # fmt: skip
    body = _json(response)
    if response.status_code == 200 and body.get("access_token") and body.get("refresh_token"):
        refresh_expires = body.get("x_refresh_token_expires_in") or body.get("refresh_token_expires_in")
        return TokenGrant(
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]),
            expires_in=float(body.get("expires_in") or 3600),
            refresh_expires_in=float(refresh_expires) if refresh_expires else None,
        )
    error = str(body.get("error") or f"HTTP {response.status_code}")
    text = mask_secrets(f"{client.system} token endpoint answered {response.status_code} {error}", secrets)
    if error == "invalid_grant":
        raise ReconnectRequired(
            f"{text}: the stored refresh token of connection {client.conn_id!r} is no longer accepted. Reconnect "
            f"the company in {client.system} and put the new refresh token into the connection's extra "
            "'refresh_token'; closeout starts again from it at the next run."
        )
    retryable = response.status_code >= 500 or response.status_code == 429
    if response.status_code in (400, 401) and error == "invalid_client":
        text += f": check the client id (login) and secret (password) of connection {client.conn_id!r}"
    raise OAuthError(text, status=response.status_code, retryable=retryable)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
