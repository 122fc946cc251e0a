"""Harvest OAuth 2.0 through the hook, against the sandbox's Harvest ID and a real warehouse: the authorization code
is traded once, every refresh rotates the refresh token and the new one is stored (committed) before the new
access token is used, a refused access token is refreshed once and the refused request repeated (reads and
writes), and another worker reuses the stored access token instead of refreshing again."""

from __future__ import annotations

import json

import pytest
from closeout.accounting.api.oauth import OAuthError
from closeout.trackers.harvest.hook import HarvestHook
from closeout.writeback.harvest_api import HarvestWriter
from closeout.writeback.harvest_oauth import exchange_code

from sandbox.harvest.oauth import TOKEN_PATH

pytestmark = pytest.mark.integration


def _oauth_connection(harvest, monkeypatch: pytest.MonkeyPatch) -> str:
    app = harvest.harvest_id.register_client()
    code = harvest.harvest_id.authorize(app["client_id"], harvest.account_id)
    grant = exchange_code(harvest.url + TOKEN_PATH, app["client_id"], app["client_secret"], code)
    with pytest.raises(OAuthError):  # a code is used once
        exchange_code(harvest.url + TOKEN_PATH, app["client_id"], app["client_secret"], code)
    monkeypatch.setenv("AIRFLOW_CONN_HARVEST_DEFAULT", json.dumps({
        "conn_type": "http", "host": harvest.url, "login": app["client_id"], "password": app["client_secret"],
        "extra": {"account_id": harvest.account_id, "refresh_token": grant.refresh_token,
                  "token_url": harvest.url + TOKEN_PATH, "max_requests": 0, "per_page": 50}}))  # fmt: skip
    return grant.refresh_token


def _token_row(warehouse) -> tuple:
    return warehouse.rows("SELECT system, company_id, refresh_token, refreshes FROM closeout_data.accounting_oauth "
                          "WHERE conn_id = 'harvest_default'")[0]  # fmt: skip


def test_refresh_tokens_rotate_are_stored_before_use_and_a_refused_token_is_refreshed_once(
    warehouse, harvest, monkeypatch
) -> None:
    first = _oauth_connection(harvest, monkeypatch)
    hook = HarvestHook()
    assert hook.get_time_entry(1) is None, "an authorized read (404: no such entry)"
    system, account, stored, refreshes = _token_row(warehouse)
    assert (system, account, refreshes) == ("harvest", harvest.account_id, 1)
    assert stored != first, "the rotated refresh token is the stored one"
    assert harvest.harvest_id.live_refresh_tokens() == 1, "the first refresh token is dead after one use"

    harvest.harvest_id.expire_access_tokens()  # the access token now answers 401
    assert hook.get_time_entry(1) is None
    _, _, rotated, refreshes = _token_row(warehouse)
    assert refreshes == 2 and rotated != stored

    harvest.harvest_id.expire_access_tokens()
    writer = HarvestWriter(HarvestHook())  # another worker: reads the stored (expired) token, refreshes once, writes
    body = {"client_id": next(iter(harvest._clients)), "number": "OAUTH-1",
            "line_items": [{"kind": "Service", "unit_price": "10.00"}]}
    created = writer.write("POST", "invoices", body)
    assert created is not None and created["number"] == "OAUTH-1"
    assert len(harvest.invoices.snapshot()) == 1, "the refused write was repeated once, after the refresh"

    grants = list(harvest.harvest_id.grants)
    HarvestHook().get_time_entry(1)  # a third worker: the stored access token is fresh, no refresh
    assert harvest.harvest_id.grants == grants == ["authorization_code", "refresh_token", "refresh_token",
                                                    "refresh_token"]  # fmt: skip
    assert _token_row(warehouse)[3] == 3


def test_a_dead_refresh_token_says_reconnect_and_keeps_no_secret_in_the_message(warehouse, harvest, monkeypatch):
    _oauth_connection(harvest, monkeypatch)
    harvest.harvest_id.revoke_refresh_tokens()
    with pytest.raises(OAuthError) as failure:
        HarvestHook().get_conn()
    assert "invalid_grant" in str(failure.value) and "refresh_token" in str(failure.value)
    assert "hvref-" not in str(failure.value) and "closeout-secret" not in str(failure.value)
