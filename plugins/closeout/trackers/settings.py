"""Sync settings: defaults, overridden by the ``closeout_sync`` Airflow Variable, then by run params.

The Variable is JSON, per tracker or shared, e.g.
``{"harvest": {"sweep_days": 120, "sweep_interval_hours": 12}, "overlap_minutes": 10}``.
It is read inside tasks only, never at DAG parse time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import Any

VARIABLE_KEY = "closeout_sync"
SWEEP_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class SyncSettings:
    overlap_minutes: int = 5  # re-read this much before the cursor: clock skew and commit lag upstream
    sweep_days: int = 90  # trailing window of spent_date re-listed to detect deletions
    sweep_interval_hours: float = 6.0  # how often 'auto' sweeps; incremental runs in between stay cheap
    sweep: str = "auto"  # auto | always | never
    history_days: int = 365  # first sync of a windowed tracker (Toggl, Clockify) reaches this far back
    reference_interval_hours: float = 6.0  # how often clients/projects/tasks/users are re-read
    full_refresh: bool = False

    def __post_init__(self) -> None:
        if self.sweep not in SWEEP_MODES:
            raise ValueError(f"sweep must be one of {SWEEP_MODES}, not {self.sweep!r}")
        if self.sweep_days < 1 or self.overlap_minutes < 0 or self.sweep_interval_hours < 0:
            raise ValueError("sweep_days must be >= 1; overlap_minutes and sweep_interval_hours >= 0")
        if not 1 <= self.history_days <= 366 or self.reference_interval_hours < 0:
            raise ValueError("history_days must be 1..366 (older history: closeout_migrate_history)")

    def merged(self, overrides: dict[str, Any] | None) -> SyncSettings:
        known = {f.name: f.type for f in fields(self)}
        picked = {k: v for k, v in (overrides or {}).items() if k in known and v is not None}
        return replace(self, **picked)


def load_settings(source: str, params: dict[str, Any] | None = None) -> SyncSettings:
    """Defaults <- Variable ``closeout_sync`` (shared keys, then the tracker's own) <- run params."""
    settings = SyncSettings()
    raw = _read_variable()
    if raw:
        shared = {k: v for k, v in raw.items() if not isinstance(v, dict)}
        settings = settings.merged(shared).merged(raw.get(source) if isinstance(raw.get(source), dict) else None)
    return settings.merged(params)


def _read_variable() -> dict[str, Any]:
    from airflow.sdk import Variable

    try:
        value = Variable.get(VARIABLE_KEY, default=None)
    except Exception:
        return {}
    if not value:
        return {}
    data = json.loads(value) if isinstance(value, str) else value
    if not isinstance(data, dict):
        raise ValueError(f"Variable {VARIABLE_KEY} must be a JSON object")
    return data
