"""The alert for a failed task: what failed, where, for which period and objects, counts and amounts where
the exception carried them, where the evidence is; never secrets.

One composition per audience: the platform team gets the technical picture (exception, log, what to
check), finance the same facts framed as money at risk. Both channels of an audience carry the same text;
the webhook payload also has every fact as a field. Secrets are masked twice: the values of the
connections closeout uses (``secrets``), and anything shaped like a key or a credential in a URL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from closeout.alerts.compose import FinanceAlert, artifact_link, mask_text, mask_value, value_lines
from closeout.alerts.fingerprint import exception_type
from closeout.alerts.markers import facts_of
from closeout.alerts.routing import EVIDENCE
from closeout.masking import SECRET_SHAPES as _SECRET_SHAPES  # noqa: F401 - re-exported for callers
from closeout.masking import mask_shapes

_MAX_MESSAGE = 1500


@dataclass(frozen=True)
class FailureFacts:
    """A failed task instance as its failure callback sees it (no metadata database needed)."""

    dag_id: str
    task_id: str
    run_id: str | None
    try_number: int | None
    map_index: int | None
    logical_date: str | None
    params: Mapping[str, Any]
    exception_type: str
    message: str
    log_url: str | None
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def period(self) -> str | None:
        period = self.facts.get("period") or self.params.get("period")
        return str(period) if period else None

    @property
    def step(self) -> str:
        return self.task_id if self.map_index in (None, -1) else f"{self.task_id}[{self.map_index}]"


def facts_from_context(context: Mapping[str, Any]) -> FailureFacts:
    """Read the failure from an Airflow task context (``on_failure_callback``)."""
    ti = context.get("ti") or context.get("task_instance")
    exception = context.get("exception")
    if isinstance(exception, BaseException):
        message, exc_type = str(exception), exception_type(exception)
    else:
        # No exception: Airflow ran this callback outside the worker (the dag-processor, for a task whose worker
        # was killed, lost or stopped heartbeating); the worker's state is gone, the log holds what there is.
        reason = exception or context.get("reason") or (
            "the task ended without raising: its worker was killed or lost (out of memory, node gone, heartbeat "
            "timeout) or Airflow marked it failed from outside; this alert comes from the dag-processor")
        message, exc_type = str(reason), "WorkerLost" if not exception else "unknown"
    try:
        log_url = getattr(ti, "log_url", None)
    except Exception:  # the link is a convenience; the alert goes out without it
        log_url = None
    dag = context.get("dag")
    logical = context.get("logical_date")
    params = context.get("params") or {}
    return FailureFacts(
        dag_id=getattr(ti, "dag_id", None) or getattr(dag, "dag_id", "unknown"),
        task_id=getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", "unknown"),
        run_id=getattr(ti, "run_id", None) or context.get("run_id"),
        try_number=getattr(ti, "try_number", None),
        map_index=getattr(ti, "map_index", None),
        logical_date=logical.isoformat() if hasattr(logical, "isoformat") else None,
        params={k: v for k, v in dict(params).items() if isinstance(v, str | int | float | bool) or v is None},
        exception_type=exc_type,
        message=message,
        log_url=log_url,
        facts=dict(facts_of(exception if isinstance(exception, BaseException) else None)),
    )


def _mask_all(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return mask_shapes(mask_text(value, secrets))
    if isinstance(value, Mapping):
        return {k: _mask_all(v, secrets) for k, v in mask_value(value, secrets).items()}
    if isinstance(value, list | tuple):
        return [_mask_all(v, secrets) for v in value]
    return value


def _fact_lines(facts: Mapping[str, Any], exponents: Mapping[str, int] | None) -> list[str]:
    lines: list[str] = []
    objects = facts.get("objects")
    if objects:
        shown = ", ".join(map(str, objects)) if isinstance(objects, list | tuple | set) else str(objects)
        lines.append(f"  Objects:   {shown}")
    for key in ("counts", "amounts"):
        if facts.get(key):
            lines += [f"  {key.capitalize()}:", *value_lines(facts[key], facts.get("currency"), exponents=exponents)]
    for key, value in facts.items():
        if key not in ("objects", "counts", "amounts", "evidence", "report_url", "period", "currency"):
            lines += [f"  {key}:", *value_lines(value, facts.get("currency"), exponents=exponents)]
    return lines or ["  (none reported by the task; see the log)"]


def compose_failure_alert(
    failure: FailureFacts,
    *,
    audience: str,
    money: bool,
    cause_id: int | None,
    occurrences: int | None,
    secrets: Iterable[str] = (),
    exponents: Mapping[str, int] | None = None,
    note: str | None = None,
) -> FinanceAlert:
    """The alert for one audience (``platform`` or ``finance``) about a new cause of failure."""
    period = failure.period
    where = f"{failure.dag_id}.{failure.step}"
    subject = f"[closeout] {where} failed{f' for {period}' if period else ''}: {failure.exception_type}"
    evidence = [f"  Task log:  {failure.log_url}"] if failure.log_url else []
    # Artifact links (presigned URLs carry X-Amz-Signature=..., which the credential masking would blank) go in
    # after masking, through placeholders; a value that is no artifact link stays in the text and is masked.
    links: dict[str, str] = {}

    def linked(value: Any) -> str | None:
        shown = artifact_link(value)
        if shown is None or shown == str(value):
            return shown
        token = f"<<artifact-link-{len(links)}>>"
        links[token] = shown
        return token

    report_link = linked(failure.facts.get("report_url"))
    if failure.facts.get("evidence"):
        evidence.append(f"  Evidence:  {linked(failure.facts['evidence'])}")
    if EVIDENCE.get(failure.dag_id):
        evidence.append(f"  Records:   {EVIDENCE[failure.dag_id]}")
    if report_link:
        evidence.append(f"  Report:    {report_link}")
    if audience == "finance":
        intro = [f"A closeout step that moves or books money failed: {where}.",
                 "Until it is fixed and run again, the figures it produces for the period may be incomplete."]
        todo = ["  The platform team has the same alert and the technical details. Hold any decision that",
                "  relies on this step's figures (payouts, the close) until it has run green."]  # fmt: skip
    else:
        intro = [f"A closeout task failed after its retries: {where}."]
        todo = ["  1. Read the task log and the error above; fix the cause (connection, data, code).",
                "  2. Clear the task (or trigger the DAG) to run it again: every closeout task is safe to retry."]
        if money:
            todo.append("  Finance has been alerted too: this DAG moves or books money.")
    params = {k: v for k, v in failure.params.items() if v not in (None, "")}
    lines = [
        *intro,
        "",
        "WHAT FAILED",
        f"  DAG:       {failure.dag_id}",
        f"  Step:      {failure.step}",
        f"  Run:       {failure.run_id or '-'} (try {failure.try_number or '-'})",
        f"  Period:    {period or '(none given)'}",
        *([f"  Params:    {', '.join(f'{k}={v}' for k, v in sorted(params.items()))}"] if params else []),
        f"  Error:     {failure.exception_type}",
        *[f"    {line}" for line in failure.message[:_MAX_MESSAGE].splitlines()[:30]],
        "",
        "FACTS",
        *_fact_lines(failure.facts, exponents),
        "",
        "EVIDENCE",
        *(evidence or ["  (none recorded)"]),
        "",
        "WHAT TO DO",
        *todo,
        "",
        f"You receive this once per cause (cause #{cause_id if cause_id is not None else '-'}): the same failure "
        "again sends nothing new until the task has succeeded once.",
        *([note] if note else []),
    ]
    payload = {
        "event": "task_failed",
        "audience": audience,
        "subject": subject,
        "text": "\n".join(lines),
        "dag_id": failure.dag_id,
        "task_id": failure.task_id,
        "map_index": failure.map_index,
        "run_id": failure.run_id,
        "try_number": failure.try_number,
        "logical_date": failure.logical_date,
        "period": period,
        "params": params,
        "exception_type": failure.exception_type,
        "message": failure.message[:_MAX_MESSAGE],
        "facts": dict(failure.facts),
        "evidence": EVIDENCE.get(failure.dag_id),
        "log_url": failure.log_url,
        "report_url": report_link,
        "money": money,
        "cause_id": cause_id,
        "occurrences": occurrences,
    }
    secret_list = [s for s in secrets if s]
    return FinanceAlert(
        subject=_mask_all(subject, secret_list),
        text=_with_links(_mask_all("\n".join(lines) + "\n", secret_list), links),
        payload=_with_links(_mask_all(payload, secret_list), links),
    )


def _with_links(value: Any, links: Mapping[str, str]) -> Any:
    """``value`` (masked text or payload) with the artifact-link placeholders replaced by the links."""
    if not links:
        return value
    if isinstance(value, str):
        for token, shown in links.items():
            value = value.replace(token, shown)
        return value
    if isinstance(value, Mapping):
        return {k: _with_links(v, links) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_links(v, links) for v in value]
    return value
