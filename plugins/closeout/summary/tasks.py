"""What ``closeout_weekly_summary``'s tasks call: ``summarise`` (figures, files, record) then ``send`` (the e-mail,
once per week). Kept apart so a failed send retries without re-rendering, and a rerun re-renders without
sending again."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

from closeout.summary.weeks import IsoWeek, WeekError, last_week, parse_week

log = logging.getLogger(__name__)


def resolve_week(value: Any, today: date) -> IsoWeek:
    """The ``week`` param (``YYYY-Www``) or, when empty, the week before ``today``'s (the Monday run's week)."""
    if value in (None, ""):
        return last_week(today)
    try:
        return parse_week(str(value))
    except WeekError as exc:
        raise ValueError(f"param week: {exc}") from None


def _mirror_payees(conn) -> int | None:
    """Bring the payee file's cost rates into the warehouse as the payouts plan does (same file, same upsert), so
    the summary costs time at today's configured rates. No file: the warehouse's last mirror is used."""
    from closeout.payouts import config

    path = config.config_path()
    if not path.exists():
        log.warning("no payee file at %s: cost rates as last mirrored into the warehouse", path)
        return None
    with conn.transaction():
        return config.mirror(conn, config.load(path))


def summarise(week_value: Any, airflow_run_id: str, today: date | None = None) -> dict[str, Any]:
    """Build the week's summary, write its files, record it. Idempotent: a rerun overwrites files and figures."""
    from closeout import artifacts
    from closeout.summary import build, files, page, record
    from closeout.warehouse.db import connect

    week = resolve_week(week_value, today or datetime.now(UTC).date())
    with connect() as conn:
        payees = _mirror_payees(conn)
        conn.commit()
        s = build.build_summary(conn, week)
        document = files.summary_document(s)
        where = files.write(s, page.render_html(s), document)
        with conn.transaction():
            renders = record.save(conn, s, files.snapshot(s, document), where, airflow_run_id)
    totals = {t.currency: {"approved_hours": format(t.approved_hours, "f"), "margin_minor": t.margin_minor,
                           "uncosted_hours": format(t.uncosted_hours, "f")} for t in s.figures.totals}  # fmt: skip
    log.info("weekly summary %s: %s (render %s) at %s", week.label, totals, renders, artifacts.link(where["html"]))
    changed = [c.week for c in s.changes if c.changed]
    return {"week": week.label, "renders": renders, "artifacts": where, "totals": totals, "payees": payees,
            "no_cost_rate": sorted(s.figures.uncosted), "changed_weeks": changed}  # fmt: skip


def send(week: str, airflow_run_id: str, resend: bool = False) -> dict[str, Any]:
    """E-mail the week's summary to finance unless it was already sent (or this run's resend already went)."""
    from closeout import artifacts
    from closeout.summary import build, files, mail, record
    from closeout.warehouse.db import connect

    with connect() as conn:
        with conn.transaction():
            claim = record.claim_send(conn, week, airflow_run_id, bool(resend))
        if claim is None:
            log.info("weekly summary %s was already sent: not sending again (resend=%s)", week, resend)
            return {"week": week, "sent": False, "reason": "already sent"}
        s = build.build_summary(conn, week)
        figures = files.snapshot(s)
        if figures != record.figures_of(conn, week):
            # time moved since summarise wrote the files: write them again, so the mail and its files agree
            from closeout.summary import page

            with conn.transaction():
                record.save(conn, s, figures, files.write(s, page.render_html(s)), airflow_run_id)
        where = record.artifacts_of(conn, week)
        links = {kind: str(artifacts.link(location)) for kind, location in where.items()}
        attachments = {files.NAMES["csv"]: artifacts.read(where["csv"]),
                       files.NAMES["payroll"]: artifacts.read(where["payroll"])}  # fmt: skip
        accepted = mail.send(s, links, attachments, claim.message_id, claim.resend)
        with conn.transaction():
            sent_at = record.complete_send(conn, claim, accepted)
    log.info("weekly summary %s sent to %s as <%s>", week, accepted, claim.message_id)
    return {"week": week, "sent": True, "message_id": claim.message_id, "recipients": accepted,
            "resend": claim.resend, "sent_at": sent_at.isoformat() if sent_at else None}  # fmt: skip
