"""The chart of accounts: a YAML (or JSON) file, validated, mirrored into ``closeout_data.ledger_accounts``.

The posting SQL never names an account: it posts to *roles* (``receivable``, ``revenue``, ...) and receives
the code of each role from this file as a query parameter. Finance renames or renumbers accounts in the file;
lines already posted keep the code and role they were posted under (history is not rewritten). The file format
is documented in ``include/ledger/accounts.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml

from closeout.paths import resource

CONFIG_ENV = "CLOSEOUT_LEDGER_ACCOUNTS"
TYPES = ("asset", "liability", "equity", "revenue", "contra_revenue", "expense")
# Roles the posting SQL uses today: each must name exactly one account (the cash leg's since migration 0017:
# Stripe fees, dispute fees, currency conversion and realised FX, credit notes, customer credit, payouts in
# transit to the bank; the expense roles since 0038).
POSTING_ROLES = ("receivable", "revenue", "cash_clearing", "cash", "refunds", "disputes", "bad_debt",
                 "payouts_payable", "contractor_costs", "processor_fees", "dispute_fees", "fx_clearing",
                 "fx_gain_loss", "credit_notes", "customer_credit", "bank_clearing",
                 # expenses in the books (migration 0038, docs/expense-books.md): recognised cost of billable and
                 # non-billable expenses, billed markup, and who the money is owed to (the person or the card)
                 "reimbursable_expenses", "expense_markup_revenue", "project_costs", "reimbursements_payable",
                 "expense_clearing",
                 # tax on invoices (migration 0042, docs/invoice-tax.md): the invoice journal credits it with the tax
                 "tax_payable")
# Roles defined for work that attaches later: optional (none today; tax_payable became a posting role with
# invoice tax, as the shipped chart already named it).
RESERVED_ROLES: tuple[str, ...] = ()
_FIELDS = {"code", "name", "type", "role", "description"}


class ChartError(ValueError):
    """A problem in the chart file, naming the account and the field."""


@dataclass(frozen=True)
class Account:
    code: str
    name: str
    type: str
    role: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Chart:
    accounts: tuple[Account, ...]
    origin: str

    @property
    def codes(self) -> dict[str, str]:
        """role -> account code, for every role in the chart (the posting SQL's parameters)."""
        return {a.role: a.code for a in self.accounts if a.role}

    @property
    def content_hash(self) -> str:
        body = json.dumps([a.__dict__ for a in self.accounts], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def default_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    return Path(override) if override else resource("ledger", "accounts.yaml")


def read(path: Path | None = None) -> Chart:
    """Parse and validate the chart file (YAML, or JSON by extension). A missing file is an error: posting
    to accounts nobody chose is worse than not posting."""
    path = path or default_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ChartError(f"{path}: chart of accounts not found") from exc
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ChartError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
    return parse(raw or {}, origin=str(path))


def parse(raw: Mapping[str, Any], *, origin: str = "<memory>") -> Chart:
    """Validate a chart given as data; every problem names the account and field."""
    name = Path(origin).name if origin != "<memory>" else origin
    items = raw.get("accounts") if isinstance(raw, Mapping) else None
    if not isinstance(items, list) or not items:
        raise ChartError(f"{name}: 'accounts' must be a non-empty list")
    accounts: list[Account] = []
    for index, item in enumerate(items):
        accounts.append(_account(name, index, item))
    _check_unique(name, accounts)
    return Chart(tuple(accounts), origin)


def _account(name: str, index: int, item: Any) -> Account:
    if not isinstance(item, Mapping):
        raise ChartError(f"{name}: account #{index + 1}: must be a mapping")
    where = f"{name}: account {item.get('code', f'#{index + 1}')}"
    unknown = set(item) - _FIELDS
    if unknown:
        raise ChartError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    for key in ("code", "name", "type"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ChartError(f'{where}: {key}: required text (quote numeric codes, e.g. "1200")')
    if item["type"] not in TYPES:
        raise ChartError(f"{where}: type: {item['type']!r} is not one of {', '.join(TYPES)}")
    role = item.get("role")
    if role is not None and role not in POSTING_ROLES + RESERVED_ROLES:
        raise ChartError(f"{where}: role: {role!r} is not one of {', '.join(POSTING_ROLES + RESERVED_ROLES)}")
    description = item.get("description")
    return Account(item["code"].strip(), item["name"].strip(), item["type"], role, description)


def _check_unique(name: str, accounts: list[Account]) -> None:
    seen: dict[str, str] = {}
    for account in accounts:
        if account.code in seen:
            raise ChartError(f"{name}: account {account.code}: code: used twice")
        seen[account.code] = account.code
    roles: dict[str, str] = {}
    for account in accounts:
        if account.role and account.role in roles:
            raise ChartError(f"{name}: account {account.code}: role: {account.role!r} is already "
                             f"account {roles[account.role]}")  # fmt: skip
        if account.role:
            roles[account.role] = account.code
    missing = [r for r in POSTING_ROLES if r not in roles]
    if missing:
        raise ChartError(f"{name}: no account for role(s) {', '.join(missing)}: the posting needs each")


def mirror(conn: psycopg.Connection, chart: Chart) -> None:
    """Make ``closeout_data.ledger_accounts`` match the chart (set-based; accounts no longer in the file are
    kept, inactive and without a role, since posted lines refer to them)."""
    rows = [json.dumps(a.__dict__) for a in chart.accounts]
    conn.execute(
        """UPDATE closeout_data.ledger_accounts SET active = false, role = NULL, updated_at = clock_timestamp()
           WHERE active AND code <> ALL(%s)""",
        ([a.code for a in chart.accounts],),
    )
    # roles first released everywhere they move from, then set: the one-per-role index holds at every row
    conn.execute(
        """UPDATE closeout_data.ledger_accounts a SET role = NULL
           FROM unnest(%s::jsonb[]) AS r
           WHERE a.code = r ->> 'code' AND a.role IS DISTINCT FROM r ->> 'role'""",
        (rows,),
    )
    conn.execute(
        """INSERT INTO closeout_data.ledger_accounts (code, name, type, role, description, active, config_hash)
           SELECT r ->> 'code', r ->> 'name', r ->> 'type', r ->> 'role', r ->> 'description', true, %s
           FROM unnest(%s::jsonb[]) AS r
           ON CONFLICT (code) DO UPDATE SET name = excluded.name, type = excluded.type, role = excluded.role,
               description = excluded.description, active = true, config_hash = excluded.config_hash,
               updated_at = clock_timestamp()
           WHERE (ledger_accounts.name, ledger_accounts.type, ledger_accounts.role, ledger_accounts.description,
                  ledger_accounts.active)
                 IS DISTINCT FROM (excluded.name, excluded.type, excluded.role, excluded.description, true)""",
        (chart.content_hash, rows),
    )
