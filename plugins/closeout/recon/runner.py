"""Run the checks: differences materialised once with psycopg, verdicts by Great Expectations, Data Docs kept."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from closeout.masking import mask_secrets
from closeout.paths import load_sql, state_dir
from closeout.recon import tolerances as tol
from closeout.recon.checks import CHECKS, Check

log = logging.getLogger(__name__)

DOCS_ENV = "CLOSEOUT_DATA_DOCS_DIR"
EVIDENCE_ROWS = 50  # failing rows kept as JSON per check; the full set stays in closeout.recon_differences
SITE = "closeout"
# Settings of each differences query's own transaction (SET LOCAL). Memory for its hashes and sorts: the entries
# check sums every current line entry per entry and per line (a million rows at month end), which under the
# server's default (4MB) spills to disk in many batches. No parallel workers: each worker of those plans builds
# the same hash tables again, so on a small machine the query got slower (benchmarks/reconcile.py: 12.8 s against
# 9.5 s on two cores at 1M entries).
QUERY_SETTINGS = {"work_mem": "256MB", "max_parallel_workers_per_gather": "0"}


@dataclass
class CheckResult:
    check_name: str
    suite: str
    status: str  # passed | failed | not_applicable | error
    observed: dict[str, Any] = field(default_factory=dict)
    tolerance: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReconResult:
    run_id: str
    period: str | None
    status: str
    checks: list[CheckResult]
    data_docs: str | None
    timings: dict[str, Any] = field(default_factory=dict)

    def by_name(self) -> dict[str, CheckResult]:
        return {c.check_name: c for c in self.checks}

    @property
    def breaches(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status in ("failed", "error")]


def docs_dir() -> Path:
    return Path(os.environ.get(DOCS_ENV) or state_dir() / "data_docs")


def period_bounds(period: str | None) -> tuple[date | None, date | None]:
    if not period:
        return None, None
    start = datetime.strptime(period, "%Y-%m").date()
    end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return start, end


def render(conn: psycopg.Connection, text: str, params: dict[str, Any]) -> str:
    """A check's SQL with its parameters inlined as literals (GX query assets take plain text)."""
    return sql.SQL(text).format(**{k: sql.Literal(v) for k, v in params.items()}).as_string(conn)


def _sqlalchemy_url(conn: psycopg.Connection) -> str:
    from sqlalchemy.engine import URL

    info = conn.info
    host = info.host
    query = {}
    if host.startswith("/"):
        query, host = {"host": host}, None
    # GX's own sessions get the same bounds and name as closeout's (closeout.warehouse.db: timeouts, keepalives)
    params = info.get_parameters()
    query.update({k: params[k] for k in ("options", "application_name", "keepalives", "keepalives_idle",
                                          "keepalives_interval", "keepalives_count") if params.get(k)})  # fmt: skip
    url = URL.create("postgresql+psycopg", username=info.user, password=info.password or None, host=host,
                     port=info.port, database=info.dbname, query=query)  # fmt: skip
    return url.render_as_string(hide_password=False).replace("$", r"\$")


def _materialise(conn: psycopg.Connection, run_id: str, check: Check, params: dict[str, Any]) -> None:
    for name, value in QUERY_SETTINGS.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))
    for name in check.files(conn):
        query = render(conn, load_sql(f"recon/{name}"), params)
        conn.execute(
            sql.SQL(
                "INSERT INTO closeout_data.recon_differences "
                "(run_id, check_name, kind, currency, item, difference_minor, hard) "
                "SELECT {run}, {check}, d.kind, d.currency, d.item, d.difference_minor, d.hard FROM ({q}) d"
            ).format(run=run_id, check=check.name, q=sql.SQL(query))
        )


def _failing_query(conn: psycopg.Connection, run_id: str, check: str, tolerance: tol.Tolerance) -> str:
    """The rows beyond tolerance: what GX expects to be none."""
    values = sql.SQL(", ").join(
        sql.SQL("({}, {}::bigint)").format(c, v) for c, v in sorted(tolerance.currencies.items())
    ) if tolerance.currencies else sql.SQL("(NULL::text, NULL::bigint)")  # fmt: skip
    return (
        sql.SQL(
            "SELECT d.kind, d.currency, d.item, d.difference_minor, d.hard, "
            "coalesce(t.tolerance_minor, {default}) AS tolerance_minor "
            "FROM closeout_data.recon_differences d "
            "LEFT JOIN (VALUES {values}) t(currency, tolerance_minor) ON t.currency = upper(d.currency) "
            "WHERE d.run_id = {run} AND d.check_name = {check} "
            "AND (d.hard OR abs(d.difference_minor) > coalesce(t.tolerance_minor, {default}))"
        )
        .format(default=tolerance.default_minor, values=values, run=run_id, check=check)
        .as_string(conn)
    )


def _observed(conn: psycopg.Connection, run_id: str, check: str, failing: str) -> dict[str, Any]:
    by_currency = {
        cur or "": {"rows": n, "difference_minor": int(total), "max_abs_difference_minor": int(biggest)}
        for cur, n, total, biggest in conn.execute(
            """SELECT currency, count(*), sum(difference_minor), max(abs(difference_minor))
               FROM closeout_data.recon_differences WHERE run_id = %s AND check_name = %s
               GROUP BY currency ORDER BY currency""",
            (run_id, check),
        ).fetchall()
    }
    n_failing = conn.execute(f"SELECT count(*) FROM ({failing}) f").fetchone()[0]
    return {"difference_rows": sum(v["rows"] for v in by_currency.values()), "failing_rows": n_failing,
            "by_currency": by_currency}  # fmt: skip


def _evidence(conn: psycopg.Connection, failing: str) -> dict[str, Any]:
    rows = conn.execute(
        f"SELECT to_jsonb(f) FROM ({failing}) f ORDER BY abs(f.difference_minor) DESC, f.item LIMIT {EVIDENCE_ROWS + 1}"
    ).fetchall()
    return {"rows": [r[0] for r in rows[:EVIDENCE_ROWS]], "truncated": len(rows) > EVIDENCE_ROWS}


def _gx_validate(
    conn: psycopg.Connection, run_id: str, queries: dict[Check, str], folder: Path, timings: dict[str, Any]
) -> dict[str, Any]:
    """Validate each check's failing-rows query with GX; check name -> (success, observed count, docs link).

    Each suite's validation is run and timed by itself (``timings["checks"][name]["gx_seconds"]``), then the
    Data Docs of all of them are rendered in one build: GX's per-validation docs action rebuilds the site index
    once per suite, and the index lists every page the kept folder holds, so that cost grows with history."""
    started = time.perf_counter()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = gx.get_context(mode="ephemeral")
    # GX's progress bars go to stderr, which an Airflow 3 worker logs as ERROR: one false error per check
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    folder.mkdir(parents=True, exist_ok=True)
    context.add_data_docs_site(
        site_name=SITE,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = context.data_sources.add_sql(name="closeout_warehouse", connection_string=_sqlalchemy_url(conn))
    definitions = {}
    for check, query in queries.items():
        asset = source.add_query_asset(name=check.name, query=query)
        batch = asset.add_batch_definition_whole_table(f"{check.name}_beyond_tolerance")
        suite = context.suites.add(gx.ExpectationSuite(name=check.suite, meta={"link": check.link}))
        suite.add_expectation(gx.expectations.ExpectTableRowCountToEqual(value=0, meta={"check": check.name}))
        definitions[check] = context.validation_definitions.add(
            gx.ValidationDefinition(name=check.name, data=batch, suite=suite)
        )
    timings["gx_setup_seconds"] = round(time.perf_counter() - started, 3)
    run = RunIdentifier(run_name=run_id)
    validated = {}
    for check, definition in definitions.items():
        started = time.perf_counter()
        validation = definition.run(result_format="SUMMARY", run_id=run)
        identifier = ValidationResultIdentifier(ExpectationSuiteIdentifier(name=check.suite), run, validation.batch_id)
        validated[check.name] = (identifier, validation)
        timings["checks"][check.name]["gx_seconds"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    context.build_data_docs(
        site_names=[SITE],
        resource_identifiers=[
            *(identifier for identifier, _ in validated.values()),
            *(ExpectationSuiteIdentifier(name=check.suite) for check in definitions),
        ],
    )
    out: dict[str, Any] = {}
    for name, (identifier, validation) in validated.items():
        observed = [r.result.get("observed_value") for r in validation.results]
        urls = context.get_docs_sites_urls(resource_identifier=identifier, site_names=[SITE])
        out[name] = (bool(validation.success), observed[0] if observed else None, urls[0]["site_url"] if urls else None)
    out["__index__"] = str(folder / "index.html")
    timings["data_docs_seconds"] = round(time.perf_counter() - started, 3)
    return out


def _publish_docs(folder: Path, verdicts: dict[str, Any], target: str) -> dict[str, Any]:
    """Copy the Data Docs GX built in ``folder`` to ``target`` in the artifact store (``data_docs/`` under
    ``CLOSEOUT_ARTIFACTS_URL`` by default) and point every verdict's link there instead of at this worker's disk."""
    from closeout import artifacts

    artifacts.upload_folder(folder, target)

    def moved(link: Any) -> Any:
        for local in (folder.as_uri(), str(folder)):
            if isinstance(link, str) and link.startswith(local + "/"):
                return target + link[len(local) :]
        return link

    out: dict[str, Any] = {}
    for name, verdict in verdicts.items():
        out[name] = moved(verdict) if name == "__index__" else (*verdict[:2], moved(verdict[2]))
    return out


def run_reconciliation(
    conn: psycopg.Connection,
    *,
    period: str | None = None,
    ledger_cutoff: datetime | None = None,
    external_cutoff: datetime | None = None,
    run_id: str | None = None,
    airflow_run_id: str | None = None,
    tolerance_overrides: dict[str, Any] | None = None,
    data_docs_dir: Path | None = None,
    checks: tuple[Check, ...] = CHECKS,
    docs_location: str | None = None,
) -> ReconResult:
    """Run every check, record the run, its differences and its verdicts (committed), return them.

    Data Docs go to the artifact store: ``docs_location`` (a folder there; default ``data_docs/`` under the
    artifacts location). ``data_docs_dir`` or ``CLOSEOUT_DATA_DOCS_DIR`` keep them in a local folder instead (one
    machine only)."""
    now = datetime.now(UTC)
    ledger_cutoff = ledger_cutoff or now
    external_cutoff = external_cutoff or now
    run_id = run_id or f"recon_{now:%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:8]}"
    start, end = period_bounds(period)
    # run_id: a check may leave to an earlier check of the same run what that one reports (stripe_objects and
    # invoices_to_stripe, stripe_balance and stripe_objects: docs/reconciliation.md)
    params = {"ledger_cutoff": ledger_cutoff, "external_cutoff": external_cutoff, "period_start": start,
              "period_end": end, "run_id": run_id}  # fmt: skip
    tolerances = tol.load(overrides=tolerance_overrides)
    folder = data_docs_dir or docs_dir()
    conn.execute(
        """INSERT INTO closeout_data.recon_runs (run_id, airflow_run_id, period, ledger_cutoff, external_cutoff,
                                                 status) VALUES (%s, %s, %s, %s, %s, 'running')""",
        (run_id, airflow_run_id, period, ledger_cutoff, external_cutoff),
    )
    conn.commit()

    results: dict[str, CheckResult] = {}
    queries: dict[Check, str] = {}
    timings: dict[str, Any] = {"checks": {}}
    for check in checks:
        tolerance = tol.for_check(tolerances, check.name)
        result = CheckResult(check.name, check.suite, "running", tolerance=tolerance.as_json())
        results[check.name] = result
        started = time.perf_counter()
        try:
            reason = check.not_applicable(conn)
            if reason:
                result.status, result.evidence = "not_applicable", {"reason": reason}
                conn.commit()
                continue
            _materialise(conn, run_id, check, params)
            failing = _failing_query(conn, run_id, check.name, tolerance)
            result.observed = _observed(conn, run_id, check.name, failing)
            conn.commit()
            queries[check] = failing
        except psycopg.Error as exc:
            conn.rollback()
            log.exception("check %s could not run", check.name)
            result.status, result.evidence = "error", {"error": mask_secrets(str(exc).strip())[:2000]}
        finally:
            timings["checks"][check.name] = {"sql_seconds": round(time.perf_counter() - started, 3),
                                             "difference_rows": result.observed.get("difference_rows", 0)}  # fmt: skip

    to_store = docs_location is not None or (data_docs_dir is None and not os.environ.get(DOCS_ENV))
    if to_store:  # GX builds into a local temporary folder; the site then goes to the artifacts location
        import tempfile

        from closeout import artifacts

        built = tempfile.TemporaryDirectory(prefix="closeout-data-docs-")
        folder = Path(built.name)
        target = docs_location or artifacts.path("data_docs")
    try:
        verdicts = _gx_validate(conn, run_id, queries, folder, timings) if queries else {}
        if to_store and verdicts:
            verdicts = _publish_docs(folder, verdicts, target)
    finally:
        if to_store:
            built.cleanup()
    started = time.perf_counter()
    for check in queries:
        result = results[check.name]
        success, gx_observed, link = verdicts.get(check.name, (False, None, None))
        result.status = "passed" if success else "failed"
        result.observed["gx_row_count_beyond_tolerance"] = gx_observed
        result.evidence = {**(_evidence(conn, queries[check]) if not success else {"rows": [], "truncated": False}),
                           "data_docs": link or verdicts.get("__index__")}  # fmt: skip

    timings["evidence_seconds"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    statuses = {r.status for r in results.values()}
    status = "error" if "error" in statuses else "failed" if "failed" in statuses else "passed"
    index = verdicts.get("__index__")
    with conn.transaction():
        for r in results.values():
            conn.execute(
                """INSERT INTO closeout_data.recon_checks (run_id, period, check_name, suite, status, observed,
                                                           tolerance, evidence)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
                (run_id, period, r.check_name, r.suite, r.status, json.dumps(r.observed), json.dumps(r.tolerance),
                 json.dumps(r.evidence, default=str)),
            )  # fmt: skip
        conn.execute(
            "UPDATE closeout_data.recon_runs SET status = %s, finished_at = clock_timestamp(), data_docs = %s "
            "WHERE run_id = %s",
            (status, index, run_id),
        )
    conn.commit()
    timings["record_seconds"] = round(time.perf_counter() - started, 3)
    return ReconResult(run_id, period, status, list(results.values()), index, timings)
