"""The pilot configuration: documented defaults, refusals that name the field, and the warehouse mirror that every
stage reads (recorded only when it changes)."""

from __future__ import annotations

from datetime import date

import pytest
from closeout.pilot import config
from closeout.pilot.compare import periods_for
from closeout.warehouse.db import connect


def test_no_file_is_pilot_mode_off_with_the_documented_defaults(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    monkeypatch.setenv("CLOSEOUT_INCLUDE_DIR", str(tmp_path))
    got = config.read()
    assert not got.enabled and got.cohort == ()
    assert got.rollback == config.RollbackCriteria(hard_mismatch=True, amount_tolerance_minor=0,
                                                   consecutive_failing_days=3)  # fmt: skip
    assert got.months == 2


def test_a_cohort_file_is_read_with_periods_as_first_days(tmp_path, monkeypatch) -> None:
    path = tmp_path / "pilot.yaml"
    path.write_text(
        "cohort:\n  - {client_key: harvest:1, from_period: 2026-11}\n"
        "  - {client_key: toggl:2, from_period: 2026-12-16}\n"
        "rollback: {amount_tolerance_minor: 500, consecutive_failing_days: 1}\ncompare: {months: 1}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    got = config.read()
    assert got.enabled
    assert got.cohort == (config.CohortClient("harvest:1", date(2026, 11, 1)),
                          config.CohortClient("toggl:2", date(2026, 12, 16)))  # fmt: skip
    assert got.rollback == config.RollbackCriteria(True, 500, 1) and got.months == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"cohort": ["harvest:1"]}, "from_period"),
        ({"cohort": [{"client_key": "harvest:1"}]}, "from_period: required"),
        ({"cohort": [{"client_key": "harvest:1", "from_period": "Nov 2026"}]}, "not YYYY-MM"),
        ({"cohort": [{"client_key": "h:1", "from_period": "2026-11"}, {"client_key": "h:1", "from_period": "2026-12"}]},
         "listed twice"),
        ({"cohort": [{"client_key": "h:1", "from_period": "2026-11", "rate": 1}]}, "unknown field"),
        ({"rollback": {"amount_tolerance_minor": 1.5}}, "amount_tolerance_minor"),
        ({"rollback": {"consecutive_failing_days": 0}}, "consecutive_failing_days"),
        ({"rollback": {"hard_mismatch": "yes"}}, "hard_mismatch"),
        ({"rollback": {"tolerance": 5}}, "unknown field"),
        ({"pilots": []}, "unknown top-level"),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(raw, message) -> None:
    with pytest.raises(config.PilotConfigError, match=message):
        config.parse(raw, origin="pilot.yaml")


def test_a_variable_naming_a_missing_file_is_an_error_not_mode_off(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(config.CONFIG_ENV, str(tmp_path / "nowhere.yaml"))
    with pytest.raises(config.PilotConfigError, match="does not exist"):
        config.read()


def test_periods_compared_are_the_configured_months_or_the_one_asked_for() -> None:
    assert periods_for(date(2027, 1, 5), 2) == ["2026-12", "2027-01"]
    assert periods_for(date(2027, 3, 31), 3) == ["2027-01", "2027-02", "2027-03"]
    assert periods_for(date(2027, 3, 31), 2, "2026-07") == ["2026-07"]


def test_the_mirror_follows_the_file_and_records_only_changes(warehouse) -> None:
    first = config.parse({"cohort": [{"client_key": "harvest:1", "from_period": "2026-11"}]})
    with connect() as conn:
        with conn.transaction():
            assert config.apply(conn, first) is True
        with conn.transaction():
            assert config.apply(conn, first) is False
        with conn.transaction():
            assert config.apply(conn, config.parse({})) is True
    assert warehouse.scalar("SELECT count(*) FROM closeout.pilot_cohort") == 0
    assert warehouse.rows("SELECT cohort_size FROM closeout_data.pilot_config_loads ORDER BY load_id") == [(1,), (0,)]


def test_the_pipeline_role_writes_the_pilot_tables_and_finance_reads_the_views(warehouse) -> None:
    tables = ("pilot_cohort", "pilot_config_loads", "pilot_shadow_drafts", "pilot_comparison_runs",
              "pilot_comparisons", "pilot_comparison_items", "pilot_breaches")  # fmt: skip
    views = ("pilot_cohort", "pilot_shadow_drafts", "pilot_comparisons", "pilot_comparison_items",
             "pilot_comparison_runs", "pilot_breaches")  # fmt: skip
    with connect() as conn:
        for table in tables:
            for right in ("SELECT", "INSERT", "UPDATE", "DELETE"):
                (ok,) = conn.execute("SELECT has_table_privilege('closeout_pipeline', %s, %s)",
                                     (f"closeout_data.{table}", right)).fetchone()  # fmt: skip
                assert ok, (table, right)
        for view in views:
            for role in ("closeout_pipeline", "closeout_finance"):
                query = "SELECT has_table_privilege(%s, %s, 'SELECT')"
                (ok,) = conn.execute(query, (role, f"closeout.{view}")).fetchone()
                assert ok, (role, view)
        (seq,) = conn.execute("SELECT has_sequence_privilege('closeout_pipeline', "
                              "'closeout_data.pilot_config_loads_load_id_seq', 'USAGE')").fetchone()  # fmt: skip
        assert seq
