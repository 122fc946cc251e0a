"""How expenses are booked: the revenue mode of billed expense lines and who paid each expense.

Harvest and Clockify report whether an expense is billable and approved, not who paid it, so the file
``include/ledger/expenses.yaml`` (or the one ``CLOSEOUT_EXPENSE_BOOKS_CONFIG`` names; YAML or JSON) says it:
ordered rules on source, category and user, first match wins, else ``default_reimbursable``. The file is
validated whole before anything is written, then mirrored into ``closeout_data.expense_payer_rules`` inside the
posting's transaction, so the expense journals (``ledger/65_expenses.sql``) read the rules set-based and record on
each booking which rule decided it.
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

CONFIG_ENV = "CLOSEOUT_EXPENSE_BOOKS_CONFIG"
REVENUE_MODES = ("pass_through", "revenue")
SOURCES = ("harvest", "clockify", "toggl")
_RULE_FIELDS = {"source", "category", "user_key", "reimbursable"}
_TOP_FIELDS = {"expense_revenue_mode", "default_reimbursable", "rules"}


class ExpensePolicyError(ValueError):
    """The expense books file cannot be used as it is; nothing was written."""


@dataclass(frozen=True)
class PayerRule:
    """Expenses matching every given field were paid by the person (``reimbursable``) or the company."""

    reimbursable: bool
    source: str | None = None
    category: str | None = None
    user_key: str | None = None

    def label(self, number: int) -> str:
        parts = [f"{name}={value}" for name, value in (("source", self.source), ("category", self.category),
                                                        ("user_key", self.user_key)) if value is not None]  # fmt: skip
        return f"rule {number}: {' '.join(parts)} -> {'person' if self.reimbursable else 'company'}"


@dataclass(frozen=True)
class ExpensePolicy:
    revenue_mode: str = "pass_through"
    default_reimbursable: bool = False
    rules: tuple[PayerRule, ...] = ()

    @property
    def content_hash(self) -> str:
        body = json.dumps([self.revenue_mode, self.default_reimbursable, [r.__dict__ for r in self.rules]])
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def default_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    return Path(override) if override else resource("ledger", "expenses.yaml")


def read(path: Path | None = None) -> ExpensePolicy:
    """Parse and validate the file. A missing file is an error (who paid would be a guess)."""
    path = path or default_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ExpensePolicyError(f"{path}: expense books configuration not found") from exc
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ExpensePolicyError(f"{path}: cannot be read: {exc}") from exc
    return parse(raw or {}, origin=path.name)


def parse(raw: Any, *, origin: str = "<memory>") -> ExpensePolicy:
    """Validate the configuration given as data; every problem names the rule and field."""
    if not isinstance(raw, Mapping):
        raise ExpensePolicyError(f"{origin}: expected a mapping")
    unknown = set(raw) - _TOP_FIELDS
    if unknown:
        raise ExpensePolicyError(f"{origin}: unknown key(s) {', '.join(sorted(unknown))}")
    mode = raw.get("expense_revenue_mode", "pass_through")
    if mode not in REVENUE_MODES:
        raise ExpensePolicyError(f"{origin}: expense_revenue_mode {mode!r} is not one of {', '.join(REVENUE_MODES)}")
    default = raw.get("default_reimbursable", False)
    if not isinstance(default, bool):
        raise ExpensePolicyError(f"{origin}: default_reimbursable must be true or false")
    items = raw.get("rules") or []
    if not isinstance(items, list):
        raise ExpensePolicyError(f"{origin}: rules must be a list")
    rules = tuple(_rule(origin, n, item) for n, item in enumerate(items, start=1))
    return ExpensePolicy(mode, default, rules)


def _rule(origin: str, number: int, item: Any) -> PayerRule:
    where = f"{origin}: rule {number}"
    if not isinstance(item, Mapping):
        raise ExpensePolicyError(f"{where}: expected a mapping")
    unknown = set(item) - _RULE_FIELDS
    if unknown:
        raise ExpensePolicyError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if not isinstance(item.get("reimbursable"), bool):
        raise ExpensePolicyError(f"{where}: reimbursable must be true or false")
    fields: dict[str, str | None] = {}
    for name in ("source", "category", "user_key"):
        value = item.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ExpensePolicyError(f"{where}: {name} must be text")
        fields[name] = value.strip() if isinstance(value, str) else None
    if fields["source"] is not None and fields["source"] not in SOURCES:
        raise ExpensePolicyError(f"{where}: source {fields['source']!r} is not one of {', '.join(SOURCES)}")
    if not any(fields.values()):
        raise ExpensePolicyError(f"{where}: give source, category or user_key (default_reimbursable covers the rest)")
    return PayerRule(item["reimbursable"], **fields)


def mirror(conn: psycopg.Connection, policy: ExpensePolicy) -> None:
    """Make ``closeout_data.expense_payer_rules`` the file's rules plus its default (in the caller's transaction).
    Bookings keep the label of the rule that decided them, so replacing the rules rewrites no history."""
    rows = [(n, r.source, r.category, r.user_key, r.reimbursable, False, r.label(n))
            for n, r in enumerate(policy.rules, start=1)]  # fmt: skip
    rows.append((len(rows) + 1, None, None, None, policy.default_reimbursable, True,
                 f"default -> {'person' if policy.default_reimbursable else 'company'}"))  # fmt: skip
    current = conn.execute(
        "SELECT DISTINCT config_hash FROM closeout_data.expense_payer_rules"
    ).fetchall()
    if current == [(policy.content_hash,)]:
        return
    conn.execute("DELETE FROM closeout_data.expense_payer_rules")
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO closeout_data.expense_payer_rules (rule_no, source, category, user_key, reimbursable,
                   is_default, label, config_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
            [(*row, policy.content_hash) for row in rows],
        )


def apply(conn: psycopg.Connection, policy: ExpensePolicy | None = None) -> ExpensePolicy:
    """Read (unless given) and mirror the policy; returns it for the posting's parameters."""
    policy = policy or read()
    mirror(conn, policy)
    return policy
