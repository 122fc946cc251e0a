"""Sync settings: defaults <- Variable closeout_sync (shared, then per tracker) <- run params."""

from __future__ import annotations

import pytest
from closeout.trackers.settings import SyncSettings, load_settings

VARIABLE = '{"overlap_minutes": 9, "harvest": {"sweep_days": 30}, "toggl": {"sweep_days": 5}}'


def test_defaults():
    assert SyncSettings() == SyncSettings(
        overlap_minutes=5, sweep_days=90, sweep_interval_hours=6.0, sweep="auto", full_refresh=False
    )


def test_merged_ignores_unknown_keys_and_none():
    base = SyncSettings()
    merged = base.merged({"sweep_days": 30, "overlap_minutes": None, "bogus": 1, "sweep": "never"})
    assert merged == SyncSettings(sweep_days=30, sweep="never")
    assert base == SyncSettings()  # frozen: merging returns a new object
    assert base.merged(None) == base
    assert base.merged({}) == base


@pytest.mark.parametrize(
    "overrides",
    [{"sweep": "sometimes"}, {"sweep_days": 0}, {"overlap_minutes": -1}, {"sweep_interval_hours": -0.5}],
)
def test_invalid_values_raise(overrides):
    with pytest.raises(ValueError):
        SyncSettings().merged(overrides)


def test_invalid_sweep_mode_in_constructor():
    with pytest.raises(ValueError, match="sweep must be one of"):
        SyncSettings(sweep="weekly")


def test_load_settings_without_variable_is_defaults_plus_params(monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_CLOSEOUT_SYNC", raising=False)
    assert load_settings("harvest") == SyncSettings()
    assert load_settings("harvest", {"full_refresh": True}) == SyncSettings(full_refresh=True)


def test_load_settings_reads_shared_then_tracker_keys(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_CLOSEOUT_SYNC", VARIABLE)

    harvest = load_settings("harvest", {})
    assert (harvest.overlap_minutes, harvest.sweep_days) == (9, 30)
    assert harvest.sweep_interval_hours == 6.0

    toggl = load_settings("toggl", None)
    assert (toggl.overlap_minutes, toggl.sweep_days) == (9, 5)

    clockify = load_settings("clockify", None)  # only the shared keys apply
    assert (clockify.overlap_minutes, clockify.sweep_days) == (9, 90)


def test_run_params_override_the_variable(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_CLOSEOUT_SYNC", VARIABLE)
    settings = load_settings("harvest", {"overlap_minutes": 1, "sweep_days": 7, "sweep": "always", "other": "x"})
    assert (settings.overlap_minutes, settings.sweep_days, settings.sweep) == (1, 7, "always")


def test_tracker_section_overrides_shared_keys(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_CLOSEOUT_SYNC", '{"sweep_days": 60, "harvest": {"sweep_days": 14}}')
    assert load_settings("harvest").sweep_days == 14
    assert load_settings("toggl").sweep_days == 60


def test_variable_that_is_not_an_object_is_an_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_CLOSEOUT_SYNC", "[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        load_settings("harvest")


def test_invalid_value_in_variable_is_an_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_CLOSEOUT_SYNC", '{"harvest": {"sweep": "hourly"}}')
    with pytest.raises(ValueError, match="sweep"):
        load_settings("harvest")
