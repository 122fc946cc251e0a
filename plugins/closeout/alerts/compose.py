"""Compose a payout-hold alert a finance person can act on without opening Airflow.

One composition feeds both channels: a plain-text e-mail with a clear subject, and a JSON webhook
payload carrying the same facts as fields plus the same text. Amounts in minor units are shown in major
units with their currency first (``-50.00 USD (-5000 minor units)``), Decimal only, with the exponent the
caller read from ``closeout_data.currencies`` (``exponents``; without it, ISO 4217's). A mapping keyed by
currency code (``{"USD": {"difference_minor": -5000}}``, as the reconcile reports per currency) names
the currency of what it holds. Known secret values are masked as a last line of defence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

log = logging.getLogger(__name__)

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


def major_units(amount_minor: int, currency: str, exponents: Mapping[str, int] | None = None) -> str:
    """``-5000`` USD -> ``-50.00 USD``, ``-5000`` KWD -> ``-5.000 KWD``, ``-500`` JPY -> ``-500 JPY``."""
    code = currency.upper()
    exponent = (exponents or {}).get(code, _EXPONENTS.get(code, 2))
    value = Decimal(int(amount_minor)).scaleb(-exponent)
    return f"{value:,.{exponent}f} {code}"


def _is_currency(key: Any, exponents: Mapping[str, int] | None) -> bool:
    code = str(key)
    return code in exponents if exponents else (len(code) == 3 and code.isalpha() and code.isupper())


def value_lines(value: Any, currency: str | None, indent: str = "    ",
                 exponents: Mapping[str, int] | None = None) -> list[str]:  # fmt: skip
    if isinstance(value, Mapping):
        if not value:
            return [f"{indent}(none given)"]
        cur = value.get("currency", currency) if isinstance(value.get("currency", currency), str) else currency
        lines = []
        for key, item in value.items():
            if isinstance(item, Mapping):
                lines.append(f"{indent}{key}:")
                inner = str(key) if _is_currency(key, exponents) else cur
                lines.extend(value_lines(item, inner, indent + "    ", exponents))
                continue
            shown = str(item)
            if cur and str(key).endswith("_minor") and isinstance(item, int) and not isinstance(item, bool):
                shown = f"{major_units(item, cur, exponents)} ({item} minor units)"
            lines.append(f"{indent}{key}: {shown}")
        return lines
    return [f"{indent}{value}"]


def tolerance_summary(tolerance: Any, observed: Any, exponents: Mapping[str, int] | None = None) -> list[str]:
    """The tolerance that applied to each currency the check reported, in words: finance reads "0.00 USD, must
    match exactly" rather than the configuration's ``default_minor``/``currencies`` keys (shown below it)."""
    if not isinstance(tolerance, Mapping) or not isinstance(observed, Mapping):
        return []
    per_currency = tolerance.get("currencies") if isinstance(tolerance.get("currencies"), Mapping) else {}
    default = tolerance.get("default_minor")
    lines = []
    for code in (str(k) for k in observed if _is_currency(k, exponents)):
        allowed = per_currency.get(code, default)
        if isinstance(allowed, int) and not isinstance(allowed, bool):
            words = "must match exactly" if allowed == 0 else "smaller differences pass"
            lines.append(f"    {code}: {major_units(allowed, code, exponents)} per row ({words})")
    return lines


def artifact_link(value: Any) -> str | None:
    """A recorded location as the link a person opens (``closeout.artifacts.link``: public https base, presigned
    URL, ``file://`` for a local base); anything else as text. An alert must go out even when the store cannot
    make a link (no presigning, unreachable credentials): then it names the location and logs why."""
    if value is None or value == "":
        return None
    from closeout.artifacts import link

    try:
        return link(str(value))
    except Exception as exc:  # the alert is the news: the location still says where the file is
        log.warning("no link for artifact %s: %s: %s", value, type(exc).__name__, exc)
        return str(value)


def mask_text(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def mask_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, Mapping):
        return {mask_text(str(k), secrets): mask_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v, secrets) for v in value]
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
    exponents: Mapping[str, int] | None = None,
    report_url: str | None = None,
) -> FinanceAlert:
    """The alert for a new payout hold. ``paused`` is None when pausing failed (``pause_problem`` says why).

    ``exponents`` (currency -> decimals, from ``closeout_data.currencies``) turns minor units into major
    units; ``report_url`` (the month-end close report, when the close breached) is linked under EVIDENCE."""
    # recorded locations under the artifacts store become links a person can open (presigned or public)
    facts = replace(facts, evidence=artifact_link(facts.evidence) or facts.evidence)
    report_url = artifact_link(report_url)
    period = facts.period or "all periods"
    currency = facts.observed.get("currency") if isinstance(facts.observed, Mapping) else None
    release = (f'python -m closeout.gate release --hold-id {hold_id} --why "<what was checked>" '
               "(signed in: your Airflow token in CLOSEOUT_AIRFLOW_TOKEN; docs/controls.md)")
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
        f"tolerance for period {period}." if facts.period else "tolerance (the daily reconcile, all periods).",
        "",
        "WHAT FAILED",
        f"  Check:     {facts.check_name}",
        f"  Period:    {period}",
        f"  Recon run: {facts.recon_run_id}",
        "  Observed:",
        *value_lines(facts.observed, currency, exponents=exponents),
        "  Tolerance:",
        *tolerance_summary(facts.tolerance, facts.observed, exponents),
        *value_lines(facts.tolerance, currency, exponents=exponents),
        "  Counts:",
        *value_lines(dict(facts.counts), currency, exponents=exponents),
        "",
        "PAYOUT HOLD",
        f"  Hold id:   {hold_id} (opened {opened_at:%Y-%m-%d %H:%M %Z})",
        f"  {pause_line}",
        f"  While the hold is open {dag_id} refuses to pay out, even if someone unpauses it.",
        "",
        "EVIDENCE",
        f"  {facts.evidence}",
        *([f"  Close report: {report_url}"] if report_url else []),
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
    if report_url:
        payload["report_url"] = report_url
    secret_list = [s for s in secrets if s]
    return FinanceAlert(
        subject=mask_text(subject, secret_list),
        text=mask_text("\n".join(lines) + "\n", secret_list),
        payload=mask_value(payload, secret_list),
    )
