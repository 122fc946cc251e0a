"""The per-client expense options of the billing configuration: read as exact decimals, refused with the client and
field named when wrong, and kept out of the settings hash (a change re-prices drafts through the expense steps
without re-judging every time entry)."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.billing import config


def _client(**options) -> dict:
    return {"clients": [{"client_key": "harvest:1", "currency": "USD", **options}]}


def test_defaults_and_a_client_override() -> None:
    parsed = config.parse({"defaults": {"expense_markup_percent": "10"}, **_client(expense_grouping="expense")})
    assert (parsed.defaults.expense_markup_percent, parsed.defaults.expense_grouping) == (D("10"), "category")
    [client] = parsed.clients
    assert (client.expense_markup_percent, client.expense_receipt_links, client.expense_grouping) == (
        D("10"), False, "expense")


def test_yaml_markup_is_an_exact_decimal(tmp_path: Path) -> None:
    path = tmp_path / "clients.yaml"
    path.write_text("clients:\n  - client_key: harvest:1\n    currency: USD\n    expense_markup_percent: 12.1\n")
    [client] = config.read(path).clients
    assert client.expense_markup_percent == D("12.1") and isinstance(client.expense_markup_percent, D)


@pytest.mark.parametrize("options, message", [
    ({"expense_markup_percent": "-1"}, "expense_markup_percent: '-1' is not a percentage between 0 and 1000"),
    ({"expense_markup_percent": "1000.5"}, "is not a percentage between 0 and 1000"),
    ({"expense_markup_percent": "ten"}, "expense_markup_percent: 'ten' is not a decimal number"),
    ({"expense_markup_percent": 12.5}, "expense_markup_percent: expected a decimal number"),
    ({"expense_markup_percent": True}, "expense_markup_percent: expected a decimal number"),
    ({"expense_receipt_links": "yes"}, "expense_receipt_links: expected true or false, got 'yes'"),
    ({"expense_grouping": "project"}, "expense_grouping: 'project' is not one of category, expense"),
])  # fmt: skip
def test_wrong_options_are_refused_naming_client_and_field(options: dict, message: str) -> None:
    with pytest.raises(config.BillingConfigError, match="client harvest:1") as refused:
        config.parse(_client(**options))
    assert message in str(refused.value)


def test_expense_options_do_not_change_the_settings_hash() -> None:
    [plain] = config.parse(_client()).clients
    [marked_up] = config.parse(_client(expense_markup_percent="15", expense_receipt_links=True,
                                       expense_grouping="expense")).clients  # fmt: skip
    assert plain.settings_hash() == marked_up.settings_hash()
    [monthly_to_weekly] = config.parse(_client(billing_period="weekly")).clients
    assert plain.settings_hash() != monthly_to_weekly.settings_hash()
