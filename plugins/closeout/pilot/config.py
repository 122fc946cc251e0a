"""The pilot configuration: which clients closeout publishes and pays out, and when to roll back.

A deployment setting, not billing: the file is named by ``CLOSEOUT_PILOT_CONFIG`` (YAML, or JSON by extension),
else ``include/pilot/pilot.yaml`` when a deployment ships one. No file, or a file without a cohort, is pilot
mode off: closeout publishes and pays out every client as it always has. Format (docs/pilot.md)::

    cohort:                          # the clients closeout bills for real, and from which billing period
      - client_key: harvest:1001     # a contract key, as in closeout.time_entries
        from_period: 2026-11         # YYYY-MM (or a date): earlier periods stay shadow (invoiced elsewhere)
    rollback:                        # evaluated on every comparison run, for cohort clients
      hard_mismatch: true            # any entry not on a line, line without entry or double billing
      amount_tolerance_minor: 0      # |net amount difference| per client, month and currency, minor units
      consecutive_failing_days: 3    # this many comparison days in a row with any difference on the client
    compare:
      months: 2                      # the months each daily run compares: this one and the previous

The file is mirrored into ``closeout_data.pilot_cohort`` by every run that depends on it (publish, payout plan,
comparison), so the rule each stage applies in SQL is the file as it is when that run starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import yaml

from closeout.paths import resource

CONFIG_ENV = "CLOSEOUT_PILOT_CONFIG"
LOCK = "closeout_pilot_cohort"
_TOP = {"cohort", "rollback", "compare"}
_ROLLBACK = {"hard_mismatch", "amount_tolerance_minor", "consecutive_failing_days"}


class PilotConfigError(ValueError):
    """A pilot configuration problem, naming the field (and the client)."""


@dataclass(frozen=True)
class CohortClient:
    client_key: str
    from_period: date


@dataclass(frozen=True)
class RollbackCriteria:
    """Defaults: zero tolerance for money, three failing days in a row."""

    hard_mismatch: bool = True
    amount_tolerance_minor: int = 0
    consecutive_failing_days: int = 3


@dataclass(frozen=True)
class PilotConfig:
    cohort: tuple[CohortClient, ...] = ()
    rollback: RollbackCriteria = field(default_factory=RollbackCriteria)
    months: int = 2
    origin: str = "<memory>"

    @property
    def enabled(self) -> bool:
        return bool(self.cohort)

    def content(self) -> dict[str, Any]:
        return json.loads(json.dumps({"cohort": [asdict(c) for c in self.cohort], "rollback": asdict(self.rollback),
                                      "months": self.months}, default=str))  # fmt: skip


def default_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    return Path(override) if override else resource("pilot", "pilot.yaml")


def read(path: Path | None = None) -> PilotConfig:
    """Parse the file; a missing file is pilot mode off (no cohort)."""
    path = path or default_path()
    if not path.exists():
        if os.environ.get(CONFIG_ENV):
            raise PilotConfigError(f"{path}: {CONFIG_ENV} names a file that does not exist")
        return PilotConfig(origin=f"{path} (missing: pilot mode off)")
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise PilotConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
    return parse(raw or {}, origin=str(path))


def parse(raw: Mapping[str, Any], *, origin: str = "<memory>") -> PilotConfig:
    if not isinstance(raw, Mapping):
        raise PilotConfigError(f"{origin}: expected a mapping with 'cohort', 'rollback' and 'compare'")
    unknown = set(raw) - _TOP
    if unknown:
        raise PilotConfigError(f"{origin}: unknown top-level key(s) {sorted(unknown)}")
    cohort_raw = raw.get("cohort") or []
    if not isinstance(cohort_raw, list):
        raise PilotConfigError(f"{origin}: cohort: expected a list")
    cohort: list[CohortClient] = []
    seen: set[str] = set()
    for index, item in enumerate(cohort_raw):
        if isinstance(item, str):
            raise PilotConfigError(f"{origin}: cohort[{index}]: give client_key and from_period (the first period "
                                   "closeout bills; earlier ones were invoiced elsewhere)")  # fmt: skip
        if not isinstance(item, Mapping) or not isinstance(item.get("client_key"), str) or not item["client_key"]:
            raise PilotConfigError(f"{origin}: cohort[{index}].client_key: required, a non-empty string")
        key = item["client_key"].strip()
        if key in seen:
            raise PilotConfigError(f"{origin}: cohort: client {key} listed twice")
        seen.add(key)
        extra = set(item) - {"client_key", "from_period"}
        if extra:
            raise PilotConfigError(f"{origin}: cohort client {key}: unknown field(s) {sorted(extra)}")
        cohort.append(CohortClient(key, _period(item.get("from_period"), f"{origin}: cohort client {key}")))
    rollback_raw = raw.get("rollback") or {}
    if not isinstance(rollback_raw, Mapping):
        raise PilotConfigError(f"{origin}: rollback: expected a mapping")
    extra = set(rollback_raw) - _ROLLBACK
    if extra:
        raise PilotConfigError(f"{origin}: rollback: unknown field(s) {sorted(extra)}")
    defaults = RollbackCriteria()
    hard = rollback_raw.get("hard_mismatch", defaults.hard_mismatch)
    if not isinstance(hard, bool):
        raise PilotConfigError(f"{origin}: rollback.hard_mismatch: expected true or false, got {hard!r}")
    tolerance = _whole(rollback_raw.get("amount_tolerance_minor", defaults.amount_tolerance_minor),
                       f"{origin}: rollback.amount_tolerance_minor", minimum=0)  # fmt: skip
    days = _whole(rollback_raw.get("consecutive_failing_days", defaults.consecutive_failing_days),
                  f"{origin}: rollback.consecutive_failing_days", minimum=1)  # fmt: skip
    compare_raw = raw.get("compare") or {}
    if not isinstance(compare_raw, Mapping) or set(compare_raw) - {"months"}:
        raise PilotConfigError(f"{origin}: compare: expected a mapping with 'months'")
    months = _whole(compare_raw.get("months", 2), f"{origin}: compare.months", minimum=1)
    return PilotConfig(tuple(cohort), RollbackCriteria(hard, tolerance, days), months, origin)


def _whole(value: Any, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PilotConfigError(f"{where}: expected a whole number >= {minimum}, got {value!r}")
    return value


def _period(value: Any, where: str) -> date:
    """``2026-11`` or ``2026-11-01`` (YAML may already have made it a date)."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not value.strip():
        raise PilotConfigError(f"{where}: from_period: required, YYYY-MM (the first billing period closeout bills)")
    text = value.strip()
    try:
        return date.fromisoformat(f"{text}-01" if len(text) == 7 else text)
    except ValueError:
        raise PilotConfigError(f"{where}: from_period: {value!r} is not YYYY-MM or YYYY-MM-DD") from None


def apply(conn: psycopg.Connection, config: PilotConfig) -> bool:
    """Mirror the cohort into the warehouse (inside the caller's transaction, under a lock so concurrent runs
    do not race); records a load when something changed. Returns whether it changed."""
    from closeout import locks

    locks.acquire(conn, locks.lock_key(conn, LOCK), name=LOCK, transaction=True)
    wanted = {c.client_key: c.from_period for c in config.cohort}
    current = dict(conn.execute("SELECT client_key, from_period FROM closeout_data.pilot_cohort").fetchall())
    if current == wanted:
        return False
    conn.execute("DELETE FROM closeout_data.pilot_cohort WHERE NOT (client_key = ANY(%s))", (list(wanted),))
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO closeout_data.pilot_cohort (client_key, from_period) VALUES (%s, %s)
               ON CONFLICT (client_key) DO UPDATE SET from_period = excluded.from_period""",
            list(wanted.items()),
        )
    content = config.content()
    conn.execute(
        """INSERT INTO closeout_data.pilot_config_loads (origin, content_hash, cohort_size, content)
           VALUES (%s, %s, %s, %s)""",
        (config.origin, hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest(), len(wanted),
         json.dumps(content)),
    )  # fmt: skip
    return True


def load_and_apply(conn: psycopg.Connection) -> PilotConfig:
    """Read the file and mirror it, committed; what every stage calls first."""
    config = read()
    with conn.transaction():
        apply(conn, config)
    return config
