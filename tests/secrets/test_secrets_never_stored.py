"""Issue 15 item 4: known secrets planted in failing calls never reach the warehouse nor an alert receiver.

Real DAG runs (``dag.test``) whose calls fail with errors that echo credentials:
* the tracker API (Harvest) answers 401 with a body that repeats the token it was sent;
* the Stripe API answers 401 with a body that repeats the secret key (a careless proxy in front of Stripe);
* a task's own exception carries a warehouse DSN with its password, query-string and header credentials,
  OAuth refresh/access tokens and Stripe/webhook keys.
Then every text, varchar and jsonb column of every table and view in ``closeout_data`` and ``closeout`` is searched
for each secret (the column list from ``information_schema``, one set-based query), and so are the payloads the
platform webhook, finance's webhook and finance's mailbox received. None may be found; the failures must have been
recorded (masked), so the test cannot pass by recording nothing."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from closeout.warehouse.embedded import ENV_VAR

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
import gate_support
from gate_support import HttpReceiver

pytestmark = pytest.mark.integration

smtp, hook_receiver, finance_conns = gate_support.smtp, gate_support.hook_receiver, gate_support.finance_conns

# Planted secrets: none of them has a shape the masking knows, except where noted, so the connections' values
# are what masks them.
HARVEST_TOKEN = "hv-PLANTED-3f9a7c21e5"
STRIPE_KEY = "sk_test_PLANTED51Hx9QeZ7k"  # shaped like a Stripe key, and stripe_default's password
PLATFORM_TOKEN = "plat-PLANTED-6d2b8e"
DSN_PASSWORD = "dsnPLANTEDpw4471"  # only in a URL's user:password@ (shape)
QUERY_PASSWORD = "qsPLANTED9931"  # only after password= (shape)
API_KEY = "akPLANTED2207"  # only after api_key= (shape)
REFRESH_TOKEN = "rtPLANTED8815"  # only in "refresh_token": "..." (shape)
ACCESS_TOKEN = "atPLANTED6402"  # only in access_token=... (shape)
BEARER = "brPLANTED5530"  # only after Bearer (shape)
WEBHOOK_SECRET = "whsec_PLANTED7781"  # shape
RESTRICTED_KEY = "rk_live_PLANTED1199"  # shape
HARVEST_PAT = "2049713.pt.PLANTEDharvestpat01"  # Harvest personal access token shape
CLOCKIFY_KEY = "ckPLANTED4418"  # only after X-Api-Key: (shape)
XERO_REFRESH = "xrPLANTED3390"  # xero_default's refresh_token extra (value)

SHAPED = (DSN_PASSWORD, QUERY_PASSWORD, API_KEY, REFRESH_TOKEN, ACCESS_TOKEN, BEARER, WEBHOOK_SECRET, RESTRICTED_KEY,
          HARVEST_PAT, CLOCKIFY_KEY)  # fmt: skip


class EchoingVendor:
    """A real HTTP server that refuses every call with a 401 whose body repeats the credentials it was sent, the
    way a misconfigured gateway or a verbose vendor does (Stripe-shaped under /v1/, Harvest-shaped elsewhere)."""

    def __init__(self) -> None:
        self.calls = 0

    def start(self) -> EchoingVendor:
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                vendor.calls += 1
                sent = self.headers.get("Authorization", "")
                if self.path.startswith("/v1/"):
                    body = {"error": {"type": "invalid_request_error",
                                      "message": f"Invalid API Key provided: {sent.removeprefix('Bearer ')} "
                                                 f"(Authorization: {sent})"}}  # fmt: skip
                else:
                    body = {"error": "invalid_token",
                            "error_description": f"token {sent.removeprefix('Bearer ')} is revoked ({sent})"}
                data = json.dumps(body).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vendor() -> Iterator[EchoingVendor]:
    server = EchoingVendor().start()
    yield server
    server.stop()


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_WEBHOOK", json.dumps(
        {"conn_type": "http", "host": receiver.url.replace("/finance", "/platform"), "password": PLATFORM_TOKEN}))
    monkeypatch.setenv("CLOSEOUT_TASK_RETRIES", "0")  # read when the DAG file is parsed: fail on the first try
    yield receiver
    receiver.stop()


@pytest.fixture
def planted_connections(vendor: EchoingVendor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_HARVEST_DEFAULT", json.dumps(
        {"conn_type": "http", "host": vendor.url, "password": HARVEST_TOKEN,
         "extra": {"account_id": "123456", "max_requests": 0, "per_page": 50}}))  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_DEFAULT", json.dumps(
        {"conn_type": "http", "host": vendor.url, "password": STRIPE_KEY,
         "extra": {"webhook_secret": WEBHOOK_SECRET, "max_network_retries": 0, "timeout": 5}}))  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_XERO_DEFAULT", json.dumps(
        {"conn_type": "http", "host": "https://api.xero.test", "login": "client", "password": "xero-client-secret-1",
         "extra": {"tenant_id": "t-1", "refresh_token": XERO_REFRESH}}))  # fmt: skip


def _warehouse_password() -> str | None:
    conn = json.loads(os.environ[ENV_VAR])
    return conn.get("password") or None


def _leaks(secrets: list[str]) -> list[tuple[str, int]]:
    """(schema.table.column, rows) holding any of ``secrets``, over every text-like column of both schemas."""
    from closeout.warehouse.db import connect
    from psycopg import sql

    with connect() as conn:
        columns = conn.execute(
            """SELECT c.table_schema, c.table_name, c.column_name
               FROM information_schema.columns c
               WHERE c.table_schema IN ('closeout_data', 'closeout')
                 AND (c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')
                      OR (c.data_type = 'ARRAY' AND c.udt_name IN ('_text', '_varchar', '_jsonb')))
               ORDER BY 1, 2, 3"""
        ).fetchall()
        assert len(columns) > 100, columns  # the whole warehouse, not a handful of tables
        parts = [
            sql.SQL("SELECT {label} AS col, count(*) AS hits FROM {schema}.{table} t "
                    "WHERE EXISTS (SELECT 1 FROM unnest(%(secrets)s::text[]) s "
                    "WHERE strpos(t.{column}::text, s) > 0)").format(
                label=sql.Literal(f"{schema}.{table}.{column}"), schema=sql.Identifier(schema),
                table=sql.Identifier(table), column=sql.Identifier(column))
            for schema, table, column in columns
        ]
        query = sql.SQL("SELECT col, hits FROM ({}) found WHERE hits > 0").format(sql.SQL(" UNION ALL ").join(parts))
        return conn.execute(query, {"secrets": secrets}).fetchall()


def _bad_billing_config(path: Path, text: str) -> Path:
    path.write_text("defaults: {grouping: " + json.dumps(text) + "}\nclients: []\n", encoding="utf-8")
    return path


def test_planted_secrets_are_found_nowhere(warehouse, run_dag, platform, smtp, hook_receiver, finance_conns,
                                           planted_connections, vendor, tmp_path, monkeypatch) -> None:  # fmt: skip
    warehouse_pw = _warehouse_password()
    dsn = f"postgresql://closeout:{DSN_PASSWORD}@db.internal:5432/closeout"
    echo = (f"{dsn}?sslmode=require host=db.internal password={QUERY_PASSWORD} "
            f"https://api.vendor.test/x?api_key={API_KEY}&access_token={ACCESS_TOKEN} "
            f'{{"refresh_token": "{REFRESH_TOKEN}"}} Authorization: Bearer {BEARER} {WEBHOOK_SECRET} '
            f"{RESTRICTED_KEY} {HARVEST_PAT} X-Api-Key: {CLOCKIFY_KEY} {STRIPE_KEY} {HARVEST_TOKEN} {XERO_REFRESH} "
            f"{warehouse_pw or ''}")  # fmt: skip

    # 1. a tracker that echoes its token in a 401
    harvest = run_dag("closeout_sync_harvest")
    assert harvest.state == "failed", harvest
    # 2. Stripe (behind a proxy that echoes the key) refusing the events backfill
    stripe = run_dag("closeout_stripe_events")
    assert stripe.state == "failed" and stripe.task_states["collect_events"] == "failed", stripe
    # 3. a task whose own exception carries a DSN, query and header credentials, OAuth tokens and keys
    monkeypatch.setenv("CLOSEOUT_BILLING_CONFIG", str(_bad_billing_config(tmp_path / "clients.yaml", echo)))
    drafts = run_dag("closeout_invoice_drafts")
    assert drafts.state == "failed" and drafts.task_states["load_billing_config"] == "failed", drafts
    assert vendor.calls >= 2

    # the failures were recorded, masked
    errors = [e for (e,) in warehouse.rows("SELECT error FROM closeout_data.payment_runs WHERE status = 'failed'")]
    assert any("401" in e and "***" in e for e in errors), errors
    causes = dict(warehouse.rows("SELECT dag_id, message FROM closeout_data.alert_causes"))
    assert {"closeout_sync_harvest", "closeout_stripe_events", "closeout_invoice_drafts"} <= set(causes), causes
    assert "postgresql://***@db.internal" in causes["closeout_invoice_drafts"], causes
    assert "HTTP 401" in causes["closeout_sync_harvest"] and "***" in causes["closeout_sync_harvest"], causes
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.alert_deliveries WHERE status = 'sent'") >= 3

    secrets = [HARVEST_TOKEN, STRIPE_KEY, PLATFORM_TOKEN, XERO_REFRESH, *SHAPED,
               gate_support.SMTP_LOGIN[1], gate_support.WEBHOOK_TOKEN, *([warehouse_pw] if warehouse_pw else [])]
    assert "closeout_data.alert_causes.task_id" in dict(_leaks(["load_billing_config"]))  # the search does find
    assert _leaks(secrets) == []

    # what the receivers got: the alerts arrived, and hold none of the secrets
    received = [json.dumps(r["json"]) for r in platform.requests + hook_receiver.requests]
    received += [m.body for m in smtp.messages] + [str(m.message["Subject"]) for m in smtp.messages]
    assert len(platform.requests) >= 3 and any("closeout_invoice_drafts" in r for r in received)
    for payload in received:
        for secret in secrets:
            assert secret not in payload, (secret, payload[:300])
