"""Compose a payout-hold alert a finance person can act on without opening Airflow.

One composition feeds both channels: a plain-text e-mail with a clear subject, and a JSON webhook
payload carrying the same facts as fields plus the same text. Amounts in minor units are also shown in
major units when the currency is known. Known secret values are masked as a last line of defence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# ISO 4217 exponents that are not 2; everything else is shown with 2 decimals.
_EXPONENTS = {"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
              "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
              "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3}  # fmt: skip
MASK = "***"


@dataclass(frozen=True)
class FinanceAlert:
    subject: str
    text: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BreachFacts:
    """What the reconcile found, as the caller of ``gate.breach`` gave it."""

    recon_run_id: str
    period: str | None
    check_name: str
    observed: Any
    tolerance: Any
    counts: Mapping[str, Any]
    evidence: str


def major_units(amount_minor: int, currency: str) -> str:
    exponent = _EXPONENTS.get(currency.upper(), 2)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(int(amount_minor)), 10**exponent)
    return f"{sign}{whole:,}" + (f".{frac:0{exponent}d}" if exponent else "") + f" {currency.upper()}"


def _value_lines(value: Any, currency: str | None, indent: str = "    ") -> list[str]:
    if isinstance(value, Mapping):
        if not value:
            return [f"{indent}(none given)"]
        cur = value.get("currency", currency) if isinstance(value.get("currency", currency), str) else currency
        lines = []
        for key, item in value.items():
            if isinstance(item, Mapping):
                lines.append(f"{indent}{key}:")
                lines.extend(_value_lines(item, cur, indent + "    "))
                continue
            shown = str(item)
            if cur and str(key).endswith("_minor") and isinstance(item, int) and not isinstance(item, bool):
                shown = f"{major_units(item, cur)} ({item} minor units)"
            lines.append(f"{indent}{key}: {shown}")
        return lines
    return [f"{indent}{value}"]


def _mask(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _mask_obj(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return _mask(value, secrets)
    if isinstance(value, Mapping):
        return {_mask(str(k), secrets): _mask_obj(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_obj(v, secrets) for v in value]
    return value


def compose_hold_alert(
    facts: BreachFacts,
    *,
    hold_id: int,
    opened_at: datetime,
    dag_id: str,
    paused: bool | None,
    pause_problem: str | None = None,
    secrets: Iterable[str] = (),
) -> FinanceAlert:
    """The alert for a new payout hold. ``paused`` is None when pausing failed (``pause_problem`` says why)."""
    period = facts.period or "(no period)"
    currency = facts.observed.get("currency") if isinstance(facts.observed, Mapping) else None
    release = f'python -m closeout.gate release --hold-id {hold_id} --by <your e-mail> --why "<what was checked>"'
    if paused:
        pause_line = f"The Airflow DAG {dag_id} has been paused."
    else:
        pause_line = (
            f"The Airflow DAG {dag_id} could NOT be paused ({pause_problem or 'unknown reason'}); "
            "the hold still blocks payouts, and the platform team should pause it."
        )
    subject = f"[closeout] Payouts on hold: {facts.check_name} out of tolerance for {period} (hold #{hold_id})"
    lines = [
        f"Contractor payouts are on hold: the reconciliation check {facts.check_name!r} is outside its",
        f"tolerance for period {period}.",
        "",
        "WHAT FAILED",
        f"  Check:     {facts.check_name}",
        f"  Period:    {period}",
        f"  Recon run: {facts.recon_run_id}",
        "  Observed:",
        *_value_lines(facts.observed, currency),
        "  Tolerance:",
        *_value_lines(facts.tolerance, currency),
        "  Counts:",
        *_value_lines(dict(facts.counts), currency),
        "",
        "PAYOUT HOLD",
        f"  Hold id:   {hold_id} (opened {opened_at:%Y-%m-%d %H:%M %Z})",
        f"  {pause_line}",
        f"  While the hold is open {dag_id} refuses to pay out, even if someone unpauses it.",
        "",
        "EVIDENCE",
        f"  {facts.evidence}",
        "",
        "WHAT TO DO",
        "  1. Review the evidence above and have the difference corrected or explained.",
        "  2. A green reconcile does NOT release the hold. When payouts are safe, release it (your name",
        "     and reason are recorded):",
        f"       {release}",
        f"  3. Ask the platform team to unpause {dag_id} once the hold is released.",
        "",
        "You receive this once per cause; the same check failing again for the same period while the",
        "hold is open sends nothing new.",
    ]
    payload = {
        "event": "payout_hold_opened",
        "subject": subject,
        "text": "\n".join(lines),
        "hold_id": hold_id,
        "opened_at": opened_at.isoformat(),
        "check_name": facts.check_name,
        "period": facts.period,
        "recon_run_id": facts.recon_run_id,
        "observed": facts.observed,
        "tolerance": facts.tolerance,
        "counts": dict(facts.counts),
        "evidence": facts.evidence,
        "dag_id": dag_id,
        "dag_paused": paused,
        "release_command": release,
    }
    secret_list = [s for s in secrets if s]
    return FinanceAlert(
        subject=_mask(subject, secret_list),
        text=_mask("\n".join(lines) + "\n", secret_list),
        payload=_mask_obj(payload, secret_list),
    )
