"""The chart of accounts: validation names the account and field; the mirror follows the file; posting uses the
file's codes and lines keep the code they were posted under."""

from __future__ import annotations

import copy
from decimal import Decimal as D

import pytest
import yaml
from closeout.ledger import accounts
from closeout.warehouse.db import connect
from ledger_support import check_invariants, follow, publish

pytestmark = pytest.mark.integration


def _raw() -> dict:
    return yaml.safe_load(accounts.default_path().read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["accounts"][0].update(type="asset-ish"), "account 1000: type: 'asset-ish' is not one of"),
        (lambda r: r["accounts"][1].update(code="1000"), "account 1000: code: used twice"),
        (lambda r: r["accounts"][1].update(role="cash"), "account 1150: role: 'cash' is already account 1000"),
        (lambda r: r["accounts"][2].pop("role"), "no account for role(s) receivable"),
        (lambda r: r["accounts"][0].update(code=1000), "account 1000: code: required text"),
        (lambda r: r["accounts"][0].update(colour="red"), "account 1000: unknown field(s) colour"),
        (lambda r: r["accounts"][0].update(role="petty"), "account 1000: role: 'petty' is not one of"),
    ],
)
def test_a_bad_chart_is_refused_naming_account_and_field(change, message) -> None:
    raw = copy.deepcopy(_raw())
    change(raw)
    with pytest.raises(accounts.ChartError, match=message.replace("(", r"\(").replace(")", r"\)")):
        accounts.parse(raw, origin="accounts.yaml")


def test_the_shipped_chart_names_every_role(warehouse) -> None:
    chart = accounts.read()
    assert set(chart.codes) == set(accounts.POSTING_ROLES) | set(accounts.RESERVED_ROLES)


def test_renumbering_an_account_posts_new_lines_to_the_new_code_and_keeps_old_lines(
    warehouse, stripe_sandbox, tmp_path, monkeypatch
) -> None:
    inv = publish(warehouse, {"a": [D("2")]})
    follow()
    raw = _raw()
    for account in raw["accounts"]:
        if account["role"] == "receivable":
            account["code"] = "1210"
            account["name"] = "Trade debtors"
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv(accounts.CONFIG_ENV, str(path))
    stripe_sandbox.pay_invoice(inv["a"][1])
    follow()
    rows = warehouse.rows("SELECT kind, account, role FROM closeout.ledger_lines WHERE role = 'receivable' "
                          "ORDER BY posted_at")  # fmt: skip
    assert rows == [("invoice", "1200", "receivable"), ("payment", "1210", "receivable")]
    assert warehouse.rows("SELECT code, active, role FROM closeout.ledger_accounts WHERE code IN ('1200', '1210') "
                          "ORDER BY code") == [("1200", False, None), ("1210", True, "receivable")]  # fmt: skip
    check_invariants(warehouse)  # by role: the receivable still ties out across both codes
    with connect() as conn:
        accounts.mirror(conn, accounts.read())
        conn.commit()
