"""The per-client tax configuration: a rate (exact decimal, inclusive or exclusive) or an exemption, with tax codes
per accounting system; every mistake is refused naming the client and the field; a client without `tax` inherits
the defaults' (none unless set); the warehouse mirrors it (closeout.billing_tax_options) and a change needs no
re-judging of entries."""

from __future__ import annotations

import re
from decimal import Decimal as D
from typing import Any

import pytest
from closeout.billing import config
from closeout.warehouse.db import connect
from tax_support import EXEMPT, VAT20


def _parse(tax: Any, defaults: dict[str, Any] | None = None) -> config.BillingConfig:
    return config.parse({"defaults": defaults or {}, "clients": [{"client_key": "harvest:1", "currency": "GBP",
                                                                 "tax": tax}]})  # fmt: skip


def test_a_rate_and_an_exemption_parse_exactly() -> None:
    (c,) = _parse({**VAT20, "rate_percent": "17.5"}).clients
    assert c.tax == config.TaxConfig(rate_percent=D("17.5"), inclusive=False, name="VAT", jurisdiction="GB",
                                     quickbooks_code="TAX20", xero_type="OUTPUT2")  # fmt: skip
    (e,) = _parse(EXEMPT).clients
    assert e.tax == config.TaxConfig(exempt=True, quickbooks_code="NON", xero_type="EXEMPTOUTPUT")
    # YAML floats are read as Decimal (never binary floating point) and the name defaults to "Tax"
    raw = config.yaml.load("rate_percent: 8.875\ninclusive: true", Loader=config._DecimalLoader)
    (y,) = _parse(raw).clients
    assert (y.tax.rate_percent, y.tax.inclusive, y.tax.name) == (D("8.875"), True, "Tax")


def test_untaxed_by_default_and_inherited_from_defaults() -> None:
    cfg = config.parse({"clients": [{"client_key": "harvest:1", "currency": "GBP"}]})
    assert cfg.defaults.tax is None and cfg.clients[0].tax is None
    cfg = config.parse({"defaults": {"tax": VAT20}, "clients": [
        {"client_key": "harvest:1", "currency": "GBP"}, {"client_key": "harvest:2", "currency": "GBP", "tax": None},
        {"client_key": "harvest:3", "currency": "GBP", "tax": EXEMPT}]})  # fmt: skip
    assert [c.tax.rate_percent if c.tax else None for c in cfg.clients] == [D("20"), None, None]
    assert cfg.clients[2].tax.exempt
    # the tax is not part of the settings that force entries to be judged again
    plain = config.parse({"clients": [{"client_key": "harvest:1", "currency": "GBP"}]}).clients[0]
    assert plain.settings_hash() == cfg.clients[0].settings_hash()


@pytest.mark.parametrize(
    ("tax", "message"),
    [
        ({"rate_percent": "101"}, "client harvest:1: tax.rate_percent: '101' is not a percentage between 0 and 100"),
        ({"rate_percent": "-1"}, "tax.rate_percent: '-1' is not a percentage"),
        ({"rate_percent": 20.5}, "client harvest:1: tax.rate_percent: required, a decimal number as text"),
        ({"rate_percent": "twenty"}, "tax.rate_percent: 'twenty' is not a decimal number"),
        ({"inclusive": False}, "client harvest:1: tax.rate_percent: required"),
        ({"rate_percent": "20", "inclusive": "yes"}, "client harvest:1: tax.inclusive: expected true or false"),
        ({"rate_percent": "20", "codes": {"quickbooks": 20}}, "client harvest:1: tax.codes.quickbooks: expected a tax"),
        ({"rate_percent": "20", "codes": {"sage": "X"}}, "client harvest:1: tax.codes: unknown accounting system"),
        ({"rate_percent": "20", "codes": ["TAX20"]}, "client harvest:1: tax.codes: expected a mapping"),
        ({"rate_percent": "20", "name": ""}, "client harvest:1: tax.name: expected text"),
        ({"rate_percent": "20", "name": "V" * 51}, "client harvest:1: tax.name: at most 50 characters"),
        ({"rate_percent": "20", "rate": "20"}, "client harvest:1: tax: unknown field(s) ['rate']"),
        ({"exempt": True, "rate_percent": "20"}, "client harvest:1: tax: an exemption takes no rate_percent"),
        ({"exempt": "true"}, "client harvest:1: tax.exempt: expected true or false"),
        ("20%", "client harvest:1: tax: expected a mapping"),
    ],
)
def test_mistakes_name_the_client_and_field(tax: Any, message: str) -> None:
    with pytest.raises(config.BillingConfigError, match=re.escape(message)):
        _parse(tax)


def test_defaults_mistakes_name_the_defaults() -> None:
    with pytest.raises(config.BillingConfigError, match=re.escape("defaults: tax.rate_percent")):
        config.parse({"defaults": {"tax": {"rate_percent": "500"}}})


def test_the_warehouse_mirrors_the_tax_configuration(warehouse) -> None:
    cfg = config.parse({"defaults": {"tax": {"rate_percent": "5", "inclusive": True, "name": "GST"}}, "clients": [
        {"client_key": "harvest:1", "currency": "GBP", "tax": VAT20},
        {"client_key": "harvest:2", "currency": "GBP", "tax": EXEMPT},
        {"client_key": "harvest:3", "currency": "GBP", "tax": None}]})  # fmt: skip
    with connect() as conn:
        changed = config.apply(conn, cfg)["changed_clients"]
        conn.commit()
    rows = warehouse.rows(
        """SELECT client_key, tax_rate_percent, tax_inclusive, tax_exempt, tax_name, tax_jurisdiction,
                  tax_quickbooks_code, tax_xero_type FROM closeout.billing_tax_options ORDER BY client_key""")
    assert rows == [
        ("*", D("5"), True, False, "GST", None, None, None),
        ("harvest:1", D("20"), False, False, "VAT", "GB", "TAX20", "OUTPUT2"),
        ("harvest:2", None, None, True, None, None, "NON", "EXEMPTOUTPUT"),
        ("harvest:3", None, None, False, None, None, None, None),
    ]
    # only the tax changes: the mirror follows, no entries are forced back for re-judging
    cfg2 = config.parse({"defaults": {"tax": {"rate_percent": "5", "inclusive": True, "name": "GST"}}, "clients": [
        {"client_key": "harvest:1", "currency": "GBP", "tax": {**VAT20, "rate_percent": "21"}},
        {"client_key": "harvest:2", "currency": "GBP", "tax": EXEMPT},
        {"client_key": "harvest:3", "currency": "GBP", "tax": None}]})  # fmt: skip
    with connect() as conn:
        result = config.apply(conn, cfg2)
        conn.commit()
    assert changed and result["changed_clients"] == [] and result["entries_to_rejudge"] == 0
    assert warehouse.scalar("SELECT tax_rate_percent FROM closeout.billing_tax_options "
                            "WHERE client_key = 'harvest:1'") == D("21")  # fmt: skip


def test_the_shipped_clients_file_parses() -> None:
    assert config.read().defaults.tax is None
