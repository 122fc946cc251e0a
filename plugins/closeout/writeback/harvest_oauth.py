"""Harvest OAuth 2.0 (Harvest ID): the one-time authorization-code exchange, and the token store the hook uses.

Write-back creates invoices and payments, which needs an account-level grant: a person with the right Harvest role
authorizes closeout's OAuth2 application once at Harvest ID; the redirect carries a one-time ``code``; ``python -m
closeout.writeback.harvest_oauth --conn-id harvest_default --code <code>`` trades it for the first refresh token,
which goes into the connection's extra ``refresh_token``. From then on the hook refreshes through the accounting
token store (``closeout_data.accounting_oauth``, one row per connection, system ``harvest``): one refresh at a time
under the row lock, the new refresh token committed before the new access token is used, a changed extra
``refresh_token`` restarting the chain (a reconnect). docs/tracker-writeback.md has the connection fields.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import requests

from closeout.accounting.api.oauth import OAuthClient, OAuthError, TokenGrant
from closeout.accounting.api.token_store import TokenStore
from closeout.masking import mask_secrets

SYSTEM = "harvest"
DEFAULT_TOKEN_URL = "https://id.getharvest.com/api/v2/oauth2/token"  # noqa: S105 - a URL, not a secret


def token_url(conn: Any) -> str:
    """Harvest ID's token endpoint, or the connection's extra ``token_url`` (a sandbox or another region)."""
    return str(conn.extra.get("token_url") or DEFAULT_TOKEN_URL)


def harvest_token_store(conn: Any, conn_id: str, account_id: str) -> TokenStore:
    """The token store of one Harvest connection (login = OAuth client id, password = client secret)."""
    if not conn.login or not conn.password:
        raise OAuthError(f"connection {conn_id!r}: OAuth needs the client id (login) and secret (password)",
                         status=None, retryable=False)  # fmt: skip
    client = OAuthClient(SYSTEM, conn_id, str(account_id), token_url(conn), str(conn.login), str(conn.password),
                         str(conn.extra["refresh_token"]), float(conn.extra.get("timeout", 30)))  # fmt: skip
    return TokenStore(client)


def exchange_code(url: str, client_id: str, client_secret: str, code: str, *, timeout: float = 30.0) -> TokenGrant:
    """``grant_type=authorization_code`` at Harvest ID: the first token pair of a new grant."""
    secrets = (client_secret, code)
    try:
        response = requests.post(url, data={"grant_type": "authorization_code", "code": code, "client_id": client_id,
                                            "client_secret": client_secret},
                                 headers={"Accept": "application/json", "User-Agent": "closeout write-back"},
                                 timeout=timeout)  # fmt: skip
    except requests.RequestException as exc:
        raise OAuthError(f"Harvest ID unreachable: {mask_secrets(exc, secrets)}", status=None, retryable=True) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not body.get("access_token") or not body.get("refresh_token"):
        error = body.get("error") if isinstance(body, dict) else None
        raise OAuthError(mask_secrets(f"Harvest ID refused the code: HTTP {response.status_code} {error or ''}",
                                      secrets), status=response.status_code, retryable=False)  # fmt: skip
    return TokenGrant(access_token=str(body["access_token"]), refresh_token=str(body["refresh_token"]),
                      expires_in=float(body.get("expires_in") or 3600), refresh_expires_in=None)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Trade an authorization code for the first refresh token of ``--conn-id`` and print what to store."""
    parser = argparse.ArgumentParser(prog="python -m closeout.writeback.harvest_oauth", description=main.__doc__)
    parser.add_argument("--conn-id", default="harvest_default")
    parser.add_argument("--code", required=True, help="the code Harvest ID's redirect carried (used once)")
    args = parser.parse_args(argv)
    from closeout.connections import get_connection

    conn = get_connection(args.conn_id)
    grant = exchange_code(token_url(conn), str(conn.login), str(conn.password), args.code)
    print(f"Put this into the extra 'refresh_token' of connection {args.conn_id!r} (it is a secret):")
    print(grant.refresh_token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
