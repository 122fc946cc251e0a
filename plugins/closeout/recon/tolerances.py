"""Per check and per currency tolerances in minor units, from include/recon/tolerances.yaml."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from closeout.paths import resource

ENV_VAR = "CLOSEOUT_RECON_TOLERANCES"
# The invariants of DESIGN.md: zero tolerance, not configurable.
ZERO_TOLERANCE = frozenset(
    {"entries_to_invoice_lines", "expenses_to_invoice_lines", "invoices_to_stripe", "journals", "payments_to_journals",
     "payouts_to_paid_invoices"}
)


class ToleranceError(ValueError):
    pass


@dataclass(frozen=True)
class Tolerance:
    default_minor: int = 0
    currencies: dict[str, int] = field(default_factory=dict)

    def for_currency(self, currency: str | None) -> int:
        return self.currencies.get((currency or "").upper(), self.default_minor)

    def as_json(self) -> dict[str, Any]:
        return {"default_minor": self.default_minor, "currencies": dict(self.currencies)}


def default_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or resource("recon", "tolerances.yaml"))


def _minor(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ToleranceError(f"{where}: a tolerance is a non-negative integer of minor units, not {value!r}")
    return value


def load(path: Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Tolerance]:
    """check name -> Tolerance; ``overrides`` has the file's shape and is merged over it (tests, DAG params)."""
    import yaml

    path = path or default_path()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    data = data or {}
    checks = dict(data.get("checks") or {})
    for name, conf in ((overrides or {}).get("checks") or {}).items():
        checks[name] = {**(checks.get(name) or {}), **conf}
    base = _minor((overrides or {}).get("default_minor", data.get("default_minor", 0)), "default_minor")
    out: dict[str, Tolerance] = {}
    for name, conf in checks.items():
        conf = conf or {}
        currencies = {str(c).upper(): _minor(v, f"{name}.{c}") for c, v in (conf.get("currencies") or {}).items()}
        tol = Tolerance(_minor(conf.get("default_minor", base), f"{name}.default_minor"), currencies)
        if name in ZERO_TOLERANCE and (tol.default_minor or any(currencies.values())):
            raise ToleranceError(f"{name} checks an invariant: its tolerance is zero ({path})")
        out[name] = tol
    out.setdefault("__default__", Tolerance(0 if base is None else base))
    return out


def for_check(tolerances: dict[str, Tolerance], name: str) -> Tolerance:
    if name in ZERO_TOLERANCE:
        return Tolerance(0)
    return tolerances.get(name) or tolerances.get("__default__") or Tolerance(0)
