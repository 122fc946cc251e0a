"""Shared set-up for the accounting API tests: a QuickBooks sandbox wired to ``quickbooks_default`` the way a
platform team configures it (DESIGN.md: login = client id, password = secret, extras realm_id, refresh_token,
token_url, minorversion), and the checks that no secret leaked."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import pytest
from closeout.masking import forget_known_secrets

from sandbox.quickbooks import QuickBooksSandbox

UNLIMITED = {"requests_per_minute": None, "batch_per_minute": None, "max_concurrent": None}


def connect_quickbooks(monkeypatch: pytest.MonkeyPatch, sandbox: QuickBooksSandbox, *, refresh_token: str | None = None,
                       **extra: object) -> None:  # fmt: skip
    """Point ``quickbooks_default`` at ``sandbox`` (first refresh token: the sandbox's, unless given)."""
    monkeypatch.setenv("AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps({
        "conn_type": "http", "host": sandbox.base_url, "login": sandbox.client_id, "password": sandbox.client_secret,
        "extra": {"realm_id": sandbox.realm_id, "refresh_token": refresh_token or sandbox.first_refresh_token,
                  "token_url": sandbox.token_url, "minorversion": 75, **extra}}))  # fmt: skip
    forget_known_secrets()


def set_quickbooks_extra(monkeypatch: pytest.MonkeyPatch, **extra: object) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_QUICKBOOKS_DEFAULT"])
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps(conn))
    forget_known_secrets()


def stored_tokens(warehouse) -> dict:
    row = warehouse.rows("SELECT refresh_token, access_token, refreshes, last_error, seed_sha256 "
                         "FROM closeout_data.accounting_oauth WHERE conn_id = 'quickbooks_default'")  # fmt: skip
    assert row, "no token row"
    return dict(zip(("refresh_token", "access_token", "refreshes", "last_error", "seed_sha256"), row[0], strict=True))


def tables_holding(warehouse, secrets: Iterable[str], *, besides: str = "accounting_oauth") -> list[tuple[str, str]]:
    """(table, first 8 characters of the secret) for every warehouse table other than ``besides`` whose rows contain
    one of ``secrets`` anywhere (every column, as text)."""
    from closeout.warehouse.db import connect

    wanted = list(secrets)
    found = []
    with connect() as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_schema IN ('closeout', 'closeout_data') AND table_type = 'BASE TABLE' "
                              "AND table_name <> %s", (besides,)).fetchall()  # fmt: skip
        assert len(tables) > 20
        for schema, table in tables:
            rows = conn.execute(f'SELECT DISTINCT s FROM "{schema}"."{table}" t, unnest(%s::text[]) s '
                                "WHERE strpos(t::text, s) > 0", (wanted,)).fetchall()  # fmt: skip
            found += [(f"{schema}.{table}", secret[:8]) for (secret,) in rows]
    return found
