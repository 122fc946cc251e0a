"""The callables of ``closeout_accounting_sync``: per accounting system, customers, push, read-back.

A system is configured when its connection (``quickbooks_default`` / ``xero_default``) exists; a deployment with
neither keeps the CSV export (file mode) and these tasks skip. Read-back is another module's
(``closeout.accounting.readback.tasks.read_back``): the hook point below calls it when it is installed and says so
when it is not, rather than pretending to have read anything.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any

log = logging.getLogger(__name__)

SYSTEMS = ("quickbooks", "xero")
READBACK_MODULE = "closeout.accounting.readback.tasks"


def conn_id_of(system: str) -> str:
    return f"{system}_default"


def configured(system: str) -> bool:
    """Whether the system's connection exists (the platform team configures it to turn the push on)."""
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id_of(system))
    except Exception:  # AirflowNotFoundException: not configured (file mode)
        return False
    return True


def sync_customers(system: str, run_id: str | None = None) -> dict[str, Any]:
    """Link every client to its one customer there (``closeout.accounting.links``) before anything refers to it."""
    from closeout.accounting.links import customers_for, link_customers

    run = link_customers(customers_for(system, conn_id_of(system)))
    result = {"system": system, "linked": len(run.linked), "created": len(run.created), "reviews": len(run.reviews),
              "updated": len(run.updated), "failed": len(run.failed)}  # fmt: skip
    if system == "quickbooks":  # projects as sub-customers, where the connection asks for them (links.py)
        from closeout.accounting.links import link_projects, projects_enabled, projects_for

        if projects_enabled(conn_id_of(system)):
            projects = link_projects(projects_for(conn_id_of(system)))
            result["projects"] = {"linked": len(projects.linked), "created": len(projects.created),
                                  "reviews": len(projects.reviews)}  # fmt: skip
    return result


def push_books(system: str, run_id: str | None = None) -> dict[str, Any]:
    """Push invoices, payments and the remaining journals once each (``closeout.accounting.push.run``)."""
    from closeout.accounting.push.run import books_for, push

    books = books_for(system, conn_id_of(system))
    summary = push(books).as_dict()
    summary["requests"] = books.hook.requests_sent
    return summary


def read_back(system: str, run_id: str | None = None) -> dict[str, Any]:
    """HOOK POINT for the read-back: calls ``closeout.accounting.readback.tasks.read_back(system, ...)`` when that
    module is installed (passing ``run_id`` / ``airflow_run_id`` if it takes them); otherwise reports that nothing
    was read."""
    try:
        module = importlib.import_module(READBACK_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name and not READBACK_MODULE.startswith(exc.name):
            raise  # the read-back is there but one of its own imports is missing: that is a failure
        log.info("%s is not installed: no read-back of %s in this run", READBACK_MODULE, system)
        return {"system": system, "read_back": False, "reason": f"{READBACK_MODULE} is not installed"}
    function = module.read_back
    accepted = inspect.signature(function).parameters
    kwargs = {k: v for k, v in (("run_id", run_id), ("airflow_run_id", run_id)) if k in accepted}
    result = function(system, **kwargs)
    return result if isinstance(result, dict) else {"system": system, "read_back": True, "result": str(result)}
