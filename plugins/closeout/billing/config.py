"""Billing configuration per client, from a YAML or JSON file into the warehouse.

The file is declarative: the warehouse mirrors it after every load (a client removed from the file is
billed with the defaults again). Loads are recorded in ``closeout_data.billing_config_loads``; a client
whose settings changed has its open drafts rebuilt by the next drafting run. Rates are read as exact
decimals (a YAML ``150.10`` never passes through a float). Format (every client field but
``client_key`` is optional and falls back to ``defaults``)::

    defaults:
      billing_period: monthly        # monthly | semi_monthly | weekly
      currency: null                 # ISO code; null: bill each entry in its own currency
      grouping: project_task         # project_task | project | user | day | entry
      require_approval: true         # false for trackers without an approval step
      payment_terms_days: 30
      rounding: tracker              # tracker (the tracker's rounded hours) | exact
      publish_policy: auto           # auto (publish at period end) | hold (publish once approved)
      credit_note_policy: customer_balance  # a credit beyond what is still due on an issued invoice:
                                     # refund | customer_balance | out_of_band (docs/corrections.md)
      collections_policy: resend     # an owed invoice whose customer's payment link expired:
                                     # resend (e-mail a fresh link) | notify_finance (docs/collections.md)
      expense_markup_percent: "0"    # added to billable expenses, rounded once per line (docs/expense-billing.md)
      expense_receipt_links: false   # true: receipt links in expense line descriptions
      expense_grouping: category     # category (one line per category) | expense (one line per expense)
      tax: null                      # no tax (as before); or a rate, or an exemption (docs/invoice-tax.md):
                                     # {rate_percent: "20", inclusive: false, name: VAT, jurisdiction: GB,
                                     #  codes: {quickbooks: TAX20, xero: OUTPUT2}}
                                     # {exempt: true, codes: {quickbooks: NON, xero: EXEMPTOUTPUT}}
    clients:
      - client_key: harvest:1001     # a contract key, as in closeout.time_entries
        name: Acme Corp
        email: ap@acme.example
        currency: USD
        rate_card:                   # the agreed rates, for the rate drift report
          - rate: "150.00"
          - {project_key: "harvest:42", rate: "175.00", effective_from: 2026-01-01}
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psycopg
import yaml

from closeout.paths import resource

CONFIG_ENV = "CLOSEOUT_BILLING_CONFIG"
DEFAULTS_KEY = "*"
PERIODS = ("monthly", "semi_monthly", "weekly")
GROUPINGS = ("project_task", "project", "user", "day", "entry")
ROUNDINGS = ("tracker", "exact")
POLICIES = ("auto", "hold")
# What a credit note does with the part of a correction that exceeds what is still due on the invoice it
# credits (closeout.payments.corrections); it never changes what is drafted.
CREDIT_NOTE_POLICIES = ("refund", "customer_balance", "out_of_band")
# What closeout does when the hosted payment link a customer holds has expired on an invoice still owed
# (closeout.payments.collections); it never changes what is drafted.
COLLECTIONS_POLICIES = ("resend", "notify_finance")
# How billable expenses become lines (closeout.billing.expenses, docs/expense-billing.md).
EXPENSE_GROUPINGS = ("category", "expense")
MAX_EXPENSE_MARKUP = Decimal(1000)
# Options the expense steps read on every run (they judge every expense each time): a change needs no
# re-judging of time entries, so they stay out of the settings hash.
_EXPENSE_FIELDS = frozenset({"expense_markup_percent", "expense_receipt_links", "expense_grouping"})
# Tax is applied by the drafting's last step on every run (billing/95_tax.sql compares each draft's tax with
# its client's): a change needs no re-judging of time entries either.
_TAX_FIELDS = frozenset({"tax"})
_TAX_KEYS = frozenset({"rate_percent", "inclusive", "name", "jurisdiction", "exempt", "codes"})
_TAX_SYSTEMS = frozenset({"quickbooks", "xero"})
BUILTIN_DEFAULTS: dict[str, Any] = {
    "billing_period": "monthly",
    "currency": None,
    "grouping": "project_task",
    "require_approval": True,
    "payment_terms_days": 30,
    "rounding": "tracker",
    "publish_policy": "auto",
    "credit_note_policy": "customer_balance",
    "collections_policy": "resend",
    "expense_markup_percent": Decimal(0),
    "expense_receipt_links": False,
    "expense_grouping": "category",
    "tax": None,
}
_CLIENT_FIELDS = {"client_key", "name", "email", "rate_card", *BUILTIN_DEFAULTS}
_CARD_FIELDS = {"rate", "currency", "project_key", "task_key", "user_key", "effective_from", "effective_to"}


class BillingConfigError(ValueError):
    """A configuration problem, naming the client and the field."""


@dataclass(frozen=True)
class TaxConfig:
    """A client's tax on its invoices: a rate (exclusive: added on top of each line; inclusive: inside each
    line's amount) or an exemption, with the tax code each accounting system books it under."""

    rate_percent: Decimal | None = None
    inclusive: bool | None = None
    name: str | None = None
    jurisdiction: str | None = None
    exempt: bool = False
    quickbooks_code: str | None = None
    xero_type: str | None = None

    def columns(self) -> dict[str, Any]:
        """The billing_clients / invoices tax columns this configuration is mirrored to."""
        return {"tax_rate_percent": self.rate_percent, "tax_inclusive": self.inclusive,
                "tax_exempt": self.exempt, "tax_name": self.name, "tax_jurisdiction": self.jurisdiction,
                "tax_quickbooks_code": self.quickbooks_code, "tax_xero_type": self.xero_type}  # fmt: skip


NO_TAX_COLUMNS: dict[str, Any] = {**TaxConfig().columns(), "tax_exempt": False}


@dataclass(frozen=True)
class RateCard:
    rate: Decimal
    currency: str
    project_key: str | None = None
    task_key: str | None = None
    user_key: str | None = None
    effective_from: date | None = None
    effective_to: date | None = None


@dataclass(frozen=True)
class ClientBilling:
    client_key: str
    billing_period: str
    currency: str | None
    grouping: str
    require_approval: bool
    payment_terms_days: int
    rounding: str
    publish_policy: str
    name: str | None = None
    email: str | None = None
    rate_card: tuple[RateCard, ...] = field(default=())
    credit_note_policy: str = "customer_balance"
    collections_policy: str = "resend"
    expense_markup_percent: Decimal = Decimal(0)
    expense_receipt_links: bool = False
    expense_grouping: str = "category"
    tax: TaxConfig | None = None

    def settings_hash(self) -> str:
        """Changes only when something that decides billing changes (names, rate cards and what a credit
        note does after payment do not: none of them changes a draft)."""
        decisive = {k: v for k, v in asdict(self).items()
                    if k not in {"name", "email", "rate_card", "credit_note_policy", "collections_policy",
                                 *_EXPENSE_FIELDS, *_TAX_FIELDS}}  # fmt: skip
        return hashlib.sha256(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BillingConfig:
    defaults: ClientBilling
    clients: tuple[ClientBilling, ...]
    origin: str

    def content(self) -> dict[str, Any]:
        return json.loads(json.dumps({"defaults": asdict(self.defaults),
                                      "clients": [asdict(c) for c in self.clients]}, default=str))  # fmt: skip


class _DecimalLoader(yaml.SafeLoader):
    """YAML with floats read as Decimal: money never goes through binary floating point."""


_DecimalLoader.add_constructor(
    "tag:yaml.org,2002:float", lambda loader, node: Decimal(loader.construct_scalar(node).replace("_", ""))
)


def default_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    return Path(override) if override else resource("billing", "clients.yaml")


def read(path: Path | None = None) -> BillingConfig:
    """Parse and validate the file (YAML, or JSON by extension). A missing file means defaults only."""
    path = path or default_path()
    if not path.exists():
        return parse({}, origin=f"{path} (missing: built-in defaults)")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text, parse_float=Decimal)
        else:
            raw = yaml.load(text, Loader=_DecimalLoader)  # noqa: S506 - a SafeLoader subclass
    except (ValueError, yaml.YAMLError) as exc:
        raise BillingConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
    return parse(raw or {}, origin=str(path))


def parse(
    raw: Mapping[str, Any], *, origin: str = "<memory>", known_currencies: frozenset[str] | None = None
) -> BillingConfig:
    if not isinstance(raw, Mapping):
        raise BillingConfigError(f"{origin}: expected a mapping with 'defaults' and 'clients'")
    unknown = set(raw) - {"defaults", "clients"}
    if unknown:
        raise BillingConfigError(f"{origin}: unknown top-level key(s) {sorted(unknown)}")
    defaults_raw = raw.get("defaults") or {}
    if not isinstance(defaults_raw, Mapping):
        raise BillingConfigError(f"{origin}: defaults: expected a mapping")
    extra = set(defaults_raw) - set(BUILTIN_DEFAULTS)
    if extra:
        raise BillingConfigError(f"{origin}: defaults: unknown field(s) {sorted(extra)}")
    defaults = _client(DEFAULTS_KEY, {**BUILTIN_DEFAULTS, **defaults_raw}, BUILTIN_DEFAULTS, origin)
    clients_raw = raw.get("clients") or []
    if not isinstance(clients_raw, list):
        raise BillingConfigError(f"{origin}: clients: expected a list")
    clients: list[ClientBilling] = []
    seen: set[str] = set()
    base = {k: getattr(defaults, k) for k in BUILTIN_DEFAULTS}
    for index, item in enumerate(clients_raw):
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("client_key"), str)
            or not item["client_key"].strip()
        ):
            raise BillingConfigError(f"{origin}: clients[{index}].client_key: required, a non-empty string")
        key = item["client_key"].strip()
        if key == DEFAULTS_KEY or key in seen:
            raise BillingConfigError(
                f"{origin}: client {key}: client_key: {'reserved' if key == DEFAULTS_KEY else 'listed twice'}"
            )
        seen.add(key)
        extra = set(item) - _CLIENT_FIELDS
        if extra:
            raise BillingConfigError(f"{origin}: client {key}: unknown field(s) {sorted(extra)}")
        client = _client(key, {**base, **item}, base, origin)
        if client.currency is None:
            raise BillingConfigError(
                f"{origin}: client {key}: currency: required (set it on the client or in defaults)"
            )
        clients.append(client)
    config = BillingConfig(defaults=defaults, clients=tuple(clients), origin=origin)
    if known_currencies is not None:
        check_currencies(config, known_currencies)
    return config


def check_currencies(config: BillingConfig, known: frozenset[str]) -> None:
    for client in (config.defaults, *config.clients):
        codes = [("currency", client.currency)] + [(f"rate_card[{i}].currency", c.currency)
                                                   for i, c in enumerate(client.rate_card)]  # fmt: skip
        for name, code in codes:
            if code is not None and code not in known:
                raise BillingConfigError(
                    f"{config.origin}: client {client.client_key}: {name}: unknown currency {code!r}"
                )


def _client(key: str, values: Mapping[str, Any], base: Mapping[str, Any], origin: str) -> ClientBilling:
    where = f"{origin}: {'defaults' if key == DEFAULTS_KEY else f'client {key}'}"

    def choice(name: str, allowed: tuple[str, ...]) -> str:
        value = values.get(name, base[name])
        if value not in allowed:
            raise BillingConfigError(f"{where}: {name}: {value!r} is not one of {', '.join(allowed)}")
        return str(value)

    currency = values.get("currency", base["currency"])
    if currency is not None and (not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha()):
        raise BillingConfigError(f"{where}: currency: {currency!r} is not an ISO 4217 code")
    currency = currency.upper() if currency else None
    approval = values.get("require_approval", base["require_approval"])
    if not isinstance(approval, bool):
        raise BillingConfigError(f"{where}: require_approval: expected true or false, got {approval!r}")
    terms = values.get("payment_terms_days", base["payment_terms_days"])
    if isinstance(terms, bool) or not isinstance(terms, int) or not 0 <= terms <= 365:
        raise BillingConfigError(f"{where}: payment_terms_days: expected a whole number of days 0-365, got {terms!r}")
    for name in ("name", "email"):
        if values.get(name) is not None and not isinstance(values.get(name), str):
            raise BillingConfigError(f"{where}: {name}: expected text")
    cards_raw = values.get("rate_card") or []
    if not isinstance(cards_raw, list):
        raise BillingConfigError(f"{where}: rate_card: expected a list")
    cards = tuple(_rate_card(where, i, card, currency) for i, card in enumerate(cards_raw))
    receipt_links = values.get("expense_receipt_links", base["expense_receipt_links"])
    if not isinstance(receipt_links, bool):
        raise BillingConfigError(f"{where}: expense_receipt_links: expected true or false, got {receipt_links!r}")
    return ClientBilling(
        client_key=key,
        billing_period=choice("billing_period", PERIODS),
        currency=currency,
        grouping=choice("grouping", GROUPINGS),
        require_approval=approval,
        payment_terms_days=terms,
        rounding=choice("rounding", ROUNDINGS),
        publish_policy=choice("publish_policy", POLICIES),
        credit_note_policy=choice("credit_note_policy", CREDIT_NOTE_POLICIES),
        collections_policy=choice("collections_policy", COLLECTIONS_POLICIES),
        expense_markup_percent=_markup(where, values.get("expense_markup_percent", base["expense_markup_percent"])),
        expense_receipt_links=receipt_links,
        expense_grouping=choice("expense_grouping", EXPENSE_GROUPINGS),
        tax=_tax(where, values.get("tax", base["tax"])),
        name=values.get("name"),
        email=values.get("email"),
        rate_card=cards,
    )


def _markup(where: str, raw: Any) -> Decimal:
    """The expense markup as an exact percentage (a YAML ``12.5`` is read as a Decimal, never a float)."""
    if isinstance(raw, bool) or raw is None or isinstance(raw, float):
        raise BillingConfigError(f"{where}: expense_markup_percent: expected a decimal number (quote it in JSON)")
    try:
        markup = Decimal(str(raw))
    except InvalidOperation as exc:
        raise BillingConfigError(f"{where}: expense_markup_percent: {raw!r} is not a decimal number") from exc
    if not markup.is_finite() or markup < 0 or markup > MAX_EXPENSE_MARKUP:
        raise BillingConfigError(f"{where}: expense_markup_percent: {raw!r} is not a percentage between 0 and 1000")
    return markup


def _tax(where: str, raw: Any) -> TaxConfig | None:
    """The client's tax: None (untaxed), a rate, or an exemption; every problem names the client and field."""
    if raw is None or isinstance(raw, TaxConfig):
        return raw
    if not isinstance(raw, Mapping):
        raise BillingConfigError(f"{where}: tax: expected a mapping (rate_percent, inclusive, ...) or exempt: true")
    extra = set(raw) - _TAX_KEYS
    if extra:
        raise BillingConfigError(f"{where}: tax: unknown field(s) {sorted(extra)}")
    codes_raw = raw.get("codes") or {}
    if not isinstance(codes_raw, Mapping):
        raise BillingConfigError(f"{where}: tax.codes: expected a mapping of quickbooks / xero to a tax code")
    unknown_systems = set(codes_raw) - _TAX_SYSTEMS
    if unknown_systems:
        raise BillingConfigError(f"{where}: tax.codes: unknown accounting system(s) {sorted(unknown_systems)}")
    for system, code in codes_raw.items():
        if not isinstance(code, str) or not code.strip():
            raise BillingConfigError(f"{where}: tax.codes.{system}: expected a tax code (text), got {code!r}")
    texts = {}
    for name in ("name", "jurisdiction"):
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise BillingConfigError(f"{where}: tax.{name}: expected text, got {value!r}")
        if isinstance(value, str) and len(value.strip()) > 50:
            raise BillingConfigError(f"{where}: tax.{name}: at most 50 characters (Stripe's limit), got {value!r}")
        texts[name] = value.strip() if isinstance(value, str) else None
    exempt = raw.get("exempt", False)
    if not isinstance(exempt, bool):
        raise BillingConfigError(f"{where}: tax.exempt: expected true or false, got {exempt!r}")
    codes = {"quickbooks_code": codes_raw.get("quickbooks"), "xero_type": codes_raw.get("xero")}
    if exempt:
        if raw.get("rate_percent") is not None or raw.get("inclusive") is not None:
            raise BillingConfigError(f"{where}: tax: an exemption takes no rate_percent or inclusive")
        return TaxConfig(exempt=True, name=texts["name"], jurisdiction=texts["jurisdiction"], **codes)
    rate_raw = raw.get("rate_percent")
    if isinstance(rate_raw, bool) or rate_raw is None or isinstance(rate_raw, float):
        raise BillingConfigError(f"{where}: tax.rate_percent: required, a decimal number as text (e.g. \"20\")")
    try:
        rate = Decimal(str(rate_raw))
    except InvalidOperation as exc:
        raise BillingConfigError(f"{where}: tax.rate_percent: {rate_raw!r} is not a decimal number") from exc
    if not rate.is_finite() or rate < 0 or rate > 100:
        raise BillingConfigError(f"{where}: tax.rate_percent: {rate_raw!r} is not a percentage between 0 and 100")
    inclusive = raw.get("inclusive", False)
    if not isinstance(inclusive, bool):
        raise BillingConfigError(f"{where}: tax.inclusive: expected true or false, got {inclusive!r}")
    return TaxConfig(rate_percent=rate, inclusive=inclusive,
                     name=texts["name"] or "Tax", jurisdiction=texts["jurisdiction"], **codes)  # fmt: skip


def _rate_card(where: str, index: int, card: Any, currency: str | None) -> RateCard:
    at = f"{where}: rate_card[{index}]"
    if not isinstance(card, Mapping):
        raise BillingConfigError(f"{at}: expected a mapping with at least 'rate'")
    extra = set(card) - _CARD_FIELDS
    if extra:
        raise BillingConfigError(f"{at}: unknown field(s) {sorted(extra)}")
    raw_rate = card.get("rate")
    if isinstance(raw_rate, bool) or raw_rate is None or isinstance(raw_rate, float):
        raise BillingConfigError(f"{at}.rate: required, a decimal number (quote it in JSON)")
    try:
        rate = Decimal(str(raw_rate))
    except InvalidOperation as exc:
        raise BillingConfigError(f"{at}.rate: {raw_rate!r} is not a decimal number") from exc
    if not rate.is_finite() or rate < 0 or rate > Decimal(10) ** 9:
        raise BillingConfigError(f"{at}.rate: {raw_rate!r} is not a rate between 0 and 1e9")
    card_currency = card.get("currency") or currency
    if not isinstance(card_currency, str) or len(card_currency) != 3:
        raise BillingConfigError(f"{at}.currency: required when the client has no currency")
    bounds = []
    for name in ("effective_from", "effective_to"):
        value = card.get(name)
        if value is not None and not isinstance(value, date):
            try:
                value = date.fromisoformat(str(value))
            except ValueError as exc:
                raise BillingConfigError(f"{at}.{name}: {value!r} is not a date (YYYY-MM-DD)") from exc
        bounds.append(value)
    if bounds[0] and bounds[1] and bounds[0] > bounds[1]:
        raise BillingConfigError(f"{at}: effective_from is after effective_to")
    keys = {}
    for name in ("project_key", "task_key", "user_key"):
        value = card.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise BillingConfigError(f"{at}.{name}: expected a contract key")
        keys[name] = value
    return RateCard(rate=rate, currency=card_currency.upper(), effective_from=bounds[0], effective_to=bounds[1], **keys)


def apply(conn: psycopg.Connection, config: BillingConfig) -> dict[str, Any]:
    """Mirror ``config`` into the warehouse inside the caller's transaction; mark the entries of every
    client whose billing settings changed for re-judgement. Returns what changed."""
    from closeout.billing.drafting import lock_billing

    lock_billing(conn)
    known = frozenset(code for (code,) in conn.execute("SELECT code FROM closeout_data.currencies"))
    check_currencies(config, known)
    before = dict(conn.execute("SELECT client_key, config_hash FROM closeout_data.billing_clients").fetchall())
    wanted = {c.client_key: c for c in (config.defaults, *config.clients)}
    changed = sorted(k for k in set(before) | set(wanted)
                     if k not in wanted or before.get(k) != wanted[k].settings_hash())  # fmt: skip
    conn.execute("DELETE FROM closeout_data.billing_clients WHERE NOT (client_key = ANY(%s))", (list(wanted),))
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO closeout_data.billing_clients (client_key, name, email, billing_period, currency, grouping,
                   require_approval, payment_terms_days, rounding, publish_policy, config_hash,
                   credit_note_policy, collections_policy, expense_markup_percent, expense_receipt_links,
                   expense_grouping, tax_rate_percent, tax_inclusive, tax_exempt, tax_name, tax_jurisdiction,
                   tax_quickbooks_code, tax_xero_type)
               VALUES (%(client_key)s, %(name)s, %(email)s, %(billing_period)s, %(currency)s, %(grouping)s,
                   %(require_approval)s, %(payment_terms_days)s, %(rounding)s, %(publish_policy)s, %(hash)s,
                   %(credit_note_policy)s, %(collections_policy)s, %(expense_markup_percent)s,
                   %(expense_receipt_links)s, %(expense_grouping)s, %(tax_rate_percent)s, %(tax_inclusive)s,
                   %(tax_exempt)s, %(tax_name)s, %(tax_jurisdiction)s, %(tax_quickbooks_code)s, %(tax_xero_type)s)
               ON CONFLICT (client_key) DO UPDATE SET name = excluded.name, email = excluded.email,
                   billing_period = excluded.billing_period, currency = excluded.currency,
                   grouping = excluded.grouping, require_approval = excluded.require_approval,
                   payment_terms_days = excluded.payment_terms_days, rounding = excluded.rounding,
                   publish_policy = excluded.publish_policy, config_hash = excluded.config_hash,
                   credit_note_policy = excluded.credit_note_policy, collections_policy = excluded.collections_policy,
                   expense_markup_percent = excluded.expense_markup_percent,
                   expense_receipt_links = excluded.expense_receipt_links,
                   expense_grouping = excluded.expense_grouping,
                   tax_rate_percent = excluded.tax_rate_percent, tax_inclusive = excluded.tax_inclusive,
                   tax_exempt = excluded.tax_exempt, tax_name = excluded.tax_name,
                   tax_jurisdiction = excluded.tax_jurisdiction, tax_quickbooks_code = excluded.tax_quickbooks_code,
                   tax_xero_type = excluded.tax_xero_type,
                   updated_at = CASE WHEN billing_clients.config_hash = excluded.config_hash
                                     THEN billing_clients.updated_at ELSE clock_timestamp() END""",
            [{**asdict(c), "hash": c.settings_hash(), **(c.tax.columns() if c.tax else NO_TAX_COLUMNS)}
             for c in wanted.values()],
        )
        conn.execute("DELETE FROM closeout_data.billing_rate_cards")
        cards = [(c.client_key, card.project_key, card.task_key, card.user_key, card.currency, card.rate,
                  card.effective_from, card.effective_to)
                 for c in config.clients for card in c.rate_card]  # fmt: skip
        if cards:
            cur.executemany(
                """INSERT INTO closeout_data.billing_rate_cards (client_key, project_key, task_key, user_key,
                       currency, rate, effective_from, effective_to)
                   VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s::date, '-infinity'), coalesce(%s::date, 'infinity'))""",
                cards,
            )
    marked = _mark_changed(conn, changed, configured=[c.client_key for c in config.clients])
    conn.execute(
        """INSERT INTO closeout_data.billing_config_loads (origin, content_hash, clients, rate_cards,
               changed_clients, content) VALUES (%s, %s, %s, %s, %s, %s)""",
        (config.origin, hashlib.sha256(json.dumps(config.content(), sort_keys=True).encode()).hexdigest(),
         len(config.clients), len(cards), changed, json.dumps(config.content())),
    )  # fmt: skip
    return {"origin": config.origin, "clients": len(config.clients), "rate_cards": len(cards),
            "changed_clients": changed, "entries_to_rejudge": marked}  # fmt: skip


def _mark_changed(conn: psycopg.Connection, changed: list[str], configured: list[str]) -> int:
    if not changed:
        return 0
    if DEFAULTS_KEY in changed:
        cur = conn.execute(
            """UPDATE closeout_data.billing_entries SET entry_version = -1
               WHERE client_key = ANY(%s) OR NOT (client_key = ANY(%s))""",
            (changed, configured),
        )
    else:
        cur = conn.execute(
            "UPDATE closeout_data.billing_entries SET entry_version = -1 WHERE client_key = ANY(%s)", (changed,)
        )
    return cur.rowcount
