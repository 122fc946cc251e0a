"""The warehouse roles of migration 0026, through real logins: a LOGIN role in ``closeout_pipeline`` cannot
release a hold, write a decision or mark a batch approved; one in ``closeout_finance`` can release (through the
function), but not as the person who caused the hold; decisions are evidence nobody edits."""

from __future__ import annotations

import psycopg
import pytest
from closeout.gate.holds import HoldError, open_hold, release_hold
from controls_support import connect_as, login_in

pytestmark = pytest.mark.integration


def _hold(conn: psycopg.Connection, caused_by: str | None = None, period: str = "2026-11"):
    hold, _ = open_hold(conn, recon_run_id="recon-7", check_name="ar_vs_open_invoices", period=period,
                        reason="AR differs", caused_by=caused_by)  # fmt: skip
    return hold


def test_the_pipeline_login_cannot_release_a_hold_and_a_finance_login_can(warehouse) -> None:
    with login_in("closeout_pipeline") as pipeline, login_in("closeout_finance") as finance:
        with connect_as(pipeline) as conn:
            hold = _hold(conn)  # the pipeline opens holds (the gate's breach runs as the pipeline)
            with pytest.raises(HoldError, match="may not release holds"):
                release_hold(conn, hold.hold_id, by="ana", why="looks fine to the pipeline")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(
                    """UPDATE closeout_data.payout_holds SET released_at = now(), released_by = 'ana',
                           release_reason = 'x' WHERE hold_id = %s""",
                    (hold.hold_id,),
                )
            conn.rollback()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(
                    """INSERT INTO closeout_data.decisions (kind, subject, requested_by, decided_by, outcome)
                       VALUES ('hold_release', %s, 'x', 'ana', 'released')""",
                    (str(hold.hold_id),),
                )
            conn.rollback()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT closeout_data.record_decision('held_drafts', 'inv', 'a', 'b', 'approved', "
                             "NULL, '{}')")  # fmt: skip
            conn.rollback()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("UPDATE closeout_data.payout_batches SET approved_by = 'me', approved_at = now()")
            conn.rollback()
        assert warehouse.scalar("SELECT released_at FROM closeout.payout_holds") is None
        assert warehouse.scalar("SELECT count(*) FROM closeout.decisions") == 0

        with connect_as(finance) as conn:
            released = release_hold(conn, hold.hold_id, by="ana", why="late Xero import, now matching",
                                    ref={"identified_by": "test"})  # fmt: skip
            assert released.released_by == "ana" and released.released_at is not None
            with pytest.raises(psycopg.errors.InsufficientPrivilege):  # finance writes nothing else directly
                conn.execute("INSERT INTO closeout_data.payout_holds (reason, recon_run_id, check_name, cause_key) "
                             "VALUES ('x', 'r', 'c', 'k')")  # fmt: skip
            conn.rollback()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("UPDATE closeout_data.decisions SET reason = 'edited'")
            conn.rollback()
    assert warehouse.rows(
        "SELECT kind, subject, requested_by, decided_by, outcome, reason FROM closeout.decisions") == [
        ("hold_release", str(hold.hold_id), "reconciliation recon-7", "ana", "released",
         "late Xero import, now matching")]  # fmt: skip


def test_the_person_who_caused_a_hold_cannot_release_it_and_the_refusal_is_recorded(warehouse) -> None:
    with login_in("closeout_pipeline") as pipeline, connect_as(pipeline) as conn:
        hold = _hold(conn, caused_by="ana")
    with login_in("closeout_finance") as finance, connect_as(finance) as conn:
        with pytest.raises(HoldError, match="caused by ana, who cannot release it"):
            release_hold(conn, hold.hold_id, by="ANA ", why="I checked my own breach")
        assert warehouse.scalar("SELECT released_at FROM closeout.payout_holds") is None
        released = release_hold(conn, hold.hold_id, by="ben", why="checked by someone else")
        assert released.released_by == "ben"
    assert warehouse.rows("SELECT requested_by, decided_by, outcome FROM closeout.decisions ORDER BY decision_id") == [
        ("ana", "ANA", "refused"), ("ana", "ben", "released")]  # fmt: skip


def test_decisions_are_evidence_and_invariant_11_is_a_constraint(warehouse) -> None:
    with connect_as(warehouse_owner()) as conn:  # even the owner of the tables
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("SELECT closeout_data.record_payout_decision(ARRAY['pb_x'], 'ana', 'Ana', 'approved', "
                         "NULL, '{}')")  # fmt: skip
        conn.rollback()
        conn.execute("SELECT closeout_data.record_payout_decision(ARRAY['pb_x'], 'tom', 'ana', 'rejected', NULL, "
                     "'{}')")  # fmt: skip
        conn.commit()
        with pytest.raises(psycopg.errors.RaiseException, match="evidence"):
            conn.execute("DELETE FROM closeout_data.decisions")
        conn.rollback()
    assert warehouse.scalar("SELECT count(*) FROM closeout.decisions") == 1


def warehouse_owner() -> str:
    from controls_support import _conn_fields

    return _conn_fields().get("login") or "postgres"


def test_the_migration_needs_createrole_not_superuser(warehouse_server) -> None:
    """A fresh database migrated whole by a login that has CREATEROLE and CREATEDB but is no superuser; the group
    roles exist already (roles are cluster-wide), so 0026 must skip creating them and still grant."""
    from closeout.warehouse.migrations import apply_migrations

    admin = psycopg.connect(host=warehouse_server.get("host"), port=warehouse_server.get("port") or 5432,
                            user=warehouse_server.get("login"), dbname="postgres", autocommit=True)  # fmt: skip
    name = f"ctl_migrator_{__import__('os').getpid()}"
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{name}"')
        admin.execute(f'CREATE ROLE "{name}" LOGIN CREATEROLE CREATEDB NOSUPERUSER')
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
        try:
            with psycopg.connect(host=warehouse_server.get("host"), port=warehouse_server.get("port") or 5432,
                                 user=name, dbname=name) as conn:  # fmt: skip
                applied = apply_migrations(conn)
                assert any(v.startswith("0026") for v in applied), applied
                grants = conn.execute(
                    """SELECT has_table_privilege('closeout_pipeline', 'closeout_data.payout_holds', 'INSERT'),
                              has_table_privilege('closeout_pipeline', 'closeout_data.payout_holds', 'UPDATE'),
                              has_function_privilege('closeout_finance',
                                  'closeout_data.release_payout_hold(bigint, text, text, jsonb)', 'EXECUTE'),
                              has_function_privilege('closeout_pipeline',
                                  'closeout_data.release_payout_hold(bigint, text, text, jsonb)', 'EXECUTE')"""
                ).fetchone()
                assert grants == (True, False, True, False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP OWNED BY "{name}"')
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')
