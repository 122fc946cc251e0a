"""Payee configuration: per tracker user, a cost rate per hour, a currency and a Stripe connected account.

The file (``include/payouts/payees.yaml``, or the one ``CLOSEOUT_PAYEES_CONFIG`` names; YAML or JSON) is
validated whole before anything is written, then mirrored into ``closeout_data.payout_payees``.

Cost rates are money: they are read as exact decimals. YAML's ``37.1`` would be a binary float under
``yaml.safe_load`` (and ``33.333333333333333333`` would come back as ``33.333333333333336``), so the file is read
with a loader that turns YAML floats into ``Decimal`` from their text, and JSON with ``parse_float=Decimal``; a
float that reaches ``parse`` any other way is refused with a message.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psycopg
import yaml

from closeout.paths import resource

CONFIG_ENV = "CLOSEOUT_PAYEES_CONFIG"
_ACCOUNT = re.compile(r"^acct_[A-Za-z0-9_]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class _DecimalLoader(yaml.SafeLoader):
    """SafeLoader whose floats are Decimals built from the text in the file (never via a binary float)."""


def _decimal_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | str:
    text = loader.construct_scalar(node)
    try:
        return Decimal(str(text).replace("_", ""))
    except InvalidOperation:
        return str(text)  # .inf, .nan: reported by parse as "not a number"


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _decimal_float)


class PayeeConfigError(ValueError):
    """The payee file cannot be used as it is; nothing was written."""


@dataclass(frozen=True)
class Payee:
    payee_key: str
    cost_rate: Decimal
    currency: str
    account_id: str
    name: str | None = None


def config_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    return Path(override) if override else resource("payouts", "payees.yaml")


def parse(raw: Any, source: str = "payees") -> list[Payee]:
    if not isinstance(raw, dict) or not isinstance(raw.get("payees", []), list):
        raise PayeeConfigError(f"{source}: expected a mapping with a list under 'payees'")
    payees: dict[str, Payee] = {}
    for n, item in enumerate(raw.get("payees") or [], start=1):
        where = f"{source}: payee {n}"
        if not isinstance(item, dict):
            raise PayeeConfigError(f"{where}: expected a mapping")
        unknown = set(item) - {"user_key", "cost_rate", "currency", "account_id", "name"}
        if unknown:
            raise PayeeConfigError(f"{where}: unknown keys {sorted(unknown)}")
        key = str(item.get("user_key") or "").strip()
        if not key:
            raise PayeeConfigError(f"{where}: user_key is required")
        if key in payees:
            raise PayeeConfigError(f"{where}: user_key {key!r} appears twice")
        if isinstance(item.get("cost_rate"), float):
            raise PayeeConfigError(
                f"{where} ({key}): cost_rate {item.get('cost_rate')!r} was read as a binary float, which cannot "
                "hold every decimal exactly; read the file with closeout.payouts.config.load or quote the rate"
            )
        try:
            rate = Decimal(str(item.get("cost_rate")))
        except InvalidOperation as exc:
            raise PayeeConfigError(f"{where} ({key}): cost_rate {item.get('cost_rate')!r} is not a number") from exc
        if not rate.is_finite() or rate < 0:
            raise PayeeConfigError(f"{where} ({key}): cost_rate must be a number >= 0")
        currency = str(item.get("currency") or "").strip().upper()
        if not _CURRENCY.match(currency):
            raise PayeeConfigError(f"{where} ({key}): currency must be an ISO code like USD")
        account = str(item.get("account_id") or "").strip()
        if not _ACCOUNT.match(account):
            raise PayeeConfigError(f"{where} ({key}): account_id must be a Stripe connected account (acct_...)")
        payees[key] = Payee(key, rate, currency, account, (str(item["name"]) if item.get("name") else None))
    return list(payees.values())


def load(path: Path | None = None) -> list[Payee]:
    path = path or config_path()
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text, parse_float=Decimal) if path.suffix == ".json" else yaml.load(text, _DecimalLoader)  # noqa: S506 - a SafeLoader
    except (ValueError, yaml.YAMLError) as exc:
        raise PayeeConfigError(f"{path}: cannot be read: {exc}") from exc
    return parse(raw or {}, str(path))


def mirror(conn: psycopg.Connection, payees: list[Payee]) -> int:
    """Upsert the file's payees, mark the others inactive (their history stays). In the caller's transaction."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO closeout_data.payout_payees AS p (payee_key, cost_rate, currency, account_id, name, active)
               VALUES (%s, %s, %s, %s, %s, true)
               ON CONFLICT (payee_key) DO UPDATE SET cost_rate = EXCLUDED.cost_rate, currency = EXCLUDED.currency,
                   account_id = EXCLUDED.account_id, name = EXCLUDED.name, active = true,
                   updated_at = clock_timestamp()
               WHERE (p.cost_rate, p.currency, p.account_id, p.name, p.active)
                     IS DISTINCT FROM
                     (EXCLUDED.cost_rate, EXCLUDED.currency, EXCLUDED.account_id, EXCLUDED.name, true)""",
            [(p.payee_key, p.cost_rate, p.currency, p.account_id, p.name) for p in payees],
        )
        cur.execute(
            """UPDATE closeout_data.payout_payees SET active = false, updated_at = clock_timestamp()
               WHERE active AND NOT (payee_key = ANY(%s))""",
            ([p.payee_key for p in payees],),
        )
    return len(payees)
