"""The one masking (``closeout.masking``): every credential shape issue 15 lists, the connections' values, and the
close's step errors recorded through its real run records."""

from __future__ import annotations

import json

import psycopg
import pytest
from closeout.masking import MASK, mask_data, mask_error, mask_secrets, mask_shapes

SHAPES = [
    ("Invalid API Key provided: sk_live_51HxAbCdEf", "sk_live_51HxAbCdEf"),
    ("key sk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
    ("restricted rk_live_abc123XYZ", "rk_live_abc123XYZ"),
    ("signing secret whsec_5a6b7c8d9e", "whsec_5a6b7c8d9e"),
    ("Authorization: Bearer eyJhbGciOi.J9.abc", "eyJhbGciOi.J9.abc"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("postgresql://closeout:s3cr3t-pw@db:5432/closeout", "s3cr3t-pw"),
    ("https://alice:hunter22@api.vendor.test/x", "hunter22"),
    ("GET /v1/x?password=pw-in-query&ok=1", "pw-in-query"),
    ("GET /v1/x?token=tok-in-query", "tok-in-query"),
    ("GET /v1/x?api_key=key-in-query", "key-in-query"),
    ("host=db user=x password=libpq-pw dbname=y", "libpq-pw"),
    ('{"refresh_token": "rt-oauth-1", "access_token": "at-oauth-2"}', "rt-oauth-1"),
    ('{"refresh_token": "rt-oauth-1", "access_token": "at-oauth-2"}', "at-oauth-2"),
    ("{'client_secret': 'cs-oauth-3'}", "cs-oauth-3"),
    ("refresh_token=rt-form-4&grant_type=refresh_token", "rt-form-4"),
    ("Harvest token 2049713.pt.AbCdEfGhIjKlMnOp", "2049713.pt.AbCdEfGhIjKlMnOp"),
    ("X-Api-Key: clockify-key-5", "clockify-key-5"),
    ("toggl api_token: toggl-tok-6", "toggl-tok-6"),
]


@pytest.mark.parametrize(("text", "secret"), SHAPES)
def test_every_credential_shape_is_masked(text: str, secret: str) -> None:
    masked = mask_shapes(text)
    assert secret not in masked and MASK in masked, masked
    assert mask_shapes(masked) == masked  # idempotent: masking twice changes nothing


def test_ordinary_text_is_left_alone() -> None:
    for text in ("password authentication failed for user \"closeout\"", "parameter 'path' = '/etc/passwd': outside",
                 "invoice in_1Nabc for 1250 USD refused: balance_insufficient", "2026-10 close: 3 drafts held"):
        assert mask_shapes(text) == text


def test_connection_values_are_masked_whatever_their_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_TOGGL_DEFAULT", json.dumps(
        {"conn_type": "http", "host": "https://api.track.toggl.com", "password": "0123456789abcdef0123456789abcdef"}))
    monkeypatch.setenv("AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": "https://qb.test", "login": "cid", "password": "qb-client-secret-7",
         "extra": {"realm_id": "1", "refresh_token": "qb-refresh-8"}}))  # fmt: skip
    text = "Toggl said 0123456789abcdef0123456789abcdef; QuickBooks qb-client-secret-7 / qb-refresh-8"
    masked = mask_secrets(text)
    assert masked == f"Toggl said {MASK}; QuickBooks {MASK} / {MASK}"
    assert mask_secrets(None) is None
    assert mask_data({"error": text, "n": 3, "rows": [text]}) == {"error": masked, "n": 3, "rows": [masked]}
    assert mask_error(RuntimeError(text)) == f"RuntimeError: {masked}"


@pytest.mark.integration
def test_a_close_step_error_is_stored_masked(warehouse) -> None:
    """The close records a failed step's error in its run row and in the step's state: both masked, once, where
    they are written (``closeout.close.runs``), whatever the caller passed."""
    from closeout.close import runs
    from closeout.warehouse.db import connect

    dsn = "postgresql://closeout:close-PLANTED-pw@127.0.0.1:1/closeout?connect_timeout=1"
    try:
        psycopg.connect(dsn)
    except psycopg.OperationalError as exc:
        error = f"{type(exc).__name__}: {exc} (while connecting to {dsn}, sk_live_PLANTEDclose)"
    with connect() as conn:
        run = runs.begin(conn, "2026-10", "manual__secrets", dry_run=True, params={"period": "2026-10"})
        runs.step_failed(conn, run, "final_sync", error)
        assert runs.abandon(conn, run.close_run_id, f"worker lost; last error {error}") is False  # not running now
        stored = conn.execute("SELECT error, steps::text FROM closeout_data.close_runs WHERE close_run_id = %s",
                              (run.close_run_id,)).fetchone()  # fmt: skip
    assert stored[0].startswith("final_sync: OperationalError") and "postgresql://***@127.0.0.1" in stored[0]
    for text in stored:
        assert "close-PLANTED-pw" not in text and "sk_live_PLANTEDclose" not in text, text
