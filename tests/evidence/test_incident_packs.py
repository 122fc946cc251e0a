"""Every payout hold gets an incident pack, and a hold is not released without it.

The breach is real: books made by closeout's own flow (Stripe sandbox, events, journals), an invoiced entry changed
behind drafting's back, ``closeout_reconcile`` run by dag.test through the real gate (the Airflow API server pauses
the payouts DAG, the SMTP and webhook receivers get the alerts). The release path is the finance command,
``python -m closeout.gate release``, run as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from closeout import artifacts
from closeout.gate.holds import get_hold, open_hold, payouts_blocked
from closeout.warehouse.db import connect
from evidence_support import every_byte, folder_of, open_pack
from payments_support import last_month

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "controls"))
import controls_support
import gate_support
import ledger_support

pytestmark = pytest.mark.integration

books = ledger_support.books  # three invoices published, two paid, journals posted
api_server, airflow_api, smtp, hook_receiver, finance_conns = (
    gate_support.api_server, gate_support.airflow_api, gate_support.smtp, gate_support.hook_receiver,
    gate_support.finance_conns,
)  # fmt: skip
PERIOD = last_month().strftime("%Y-%m")
BREACH = "entries_to_invoice_lines"


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "artifacts"
    monkeypatch.setenv("CLOSEOUT_ARTIFACTS_URL", str(folder))
    monkeypatch.setenv("CLOSEOUT_DATA_DOCS_DIR", str(tmp_path / "data_docs"))
    return folder


def _edit_after_invoicing(delta: int) -> str:
    """A later version of an invoiced entry (amount + delta) that drafting never adjusts: a real breach of
    entries_to_invoice_lines. Returns the entry as the check names it."""
    with connect() as conn:
        source, source_id, version = conn.execute(
            """SELECT e.source, e.source_id, h.version FROM closeout.invoice_line_entries e
               JOIN closeout_data.time_entry_heads h USING (source, source_id) ORDER BY e.source_id LIMIT 1"""
        ).fetchone()
        cols = [r[0] for r in conn.execute(
            """SELECT column_name FROM information_schema.columns WHERE table_schema = 'closeout_data'
               AND table_name = 'time_entry_versions' AND column_name NOT IN ('version', 'amount_minor')
               AND is_generated = 'NEVER' ORDER BY ordinal_position""").fetchall()]  # fmt: skip
        listed = ", ".join(cols)
        conn.execute(
            f"""INSERT INTO closeout_data.time_entry_versions ({listed}, version, amount_minor)
                SELECT {listed}, version + 1, amount_minor + %s FROM closeout_data.time_entry_versions
                WHERE source = %s AND source_id = %s AND version = %s""",
            (delta, source, source_id, version),
        )
        conn.execute("UPDATE closeout_data.time_entry_heads SET version = version + 1 WHERE source = %s "
                     "AND source_id = %s", (source, source_id))  # fmt: skip
        conn.commit()
    return f"{source}:{source_id}"


def _command(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=env or dict(os.environ), timeout=120)  # fmt: skip


def _release(hold_id: int, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return _command("closeout.gate", "release", "--hold-id", str(hold_id), "--why", "difference explained", env=env)


def test_a_breach_hold_has_its_incident_pack_and_is_not_released_without_it(
    warehouse, books, store, run_dag, airflow_api, smtp, hook_receiver, finance_conns, monkeypatch
) -> None:
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_DAG_ID", gate_support.TEST_DAG)
    airflow_api.set_paused(gate_support.TEST_DAG, False)
    item = _edit_after_invoicing(5000)
    run = run_dag("closeout_reconcile", {"period": PERIOD})
    assert run.state == "failed", run
    [(hold_id, location, recon_run)] = warehouse.rows(
        "SELECT hold_id, evidence_pack, recon_run_id FROM closeout.payout_holds")  # fmt: skip
    assert location and folder_of(location).parent == store / "evidence" / "holds"
    assert folder_of(location).name.startswith(f"hold-{hold_id}-")

    # written when the hold opened: the failing check and its rows, the run and its Data Docs, the timeline
    pack = open_pack(location)
    tables = pack["json"]
    assert pack["index"]["pack"] == "incident" and pack["index"]["subject"]["hold_id"] == hold_id
    assert [(c["check_name"], c["status"], c["opened_this_hold"]) for c in tables["failing_checks"]] == [
        (BREACH, "failed", True)]  # fmt: skip
    assert [(r["check_name"], r["item"], r["difference_minor"]) for r in tables["evidence_rows"]] == [
        (BREACH, item, -5000)]  # fmt: skip
    [recon] = tables["recon_run"]
    assert recon["run_id"] == recon_run and recon["data_docs"]
    assert pack["index"]["subject"]["data_docs"] == recon["data_docs"]
    assert tables["hold"][0]["period"] == PERIOD and tables["hold"][0]["released_at"] is None
    events = [t["event"] for t in tables["timeline"]]
    assert events[0] == "reconciliation started" and "hold opened" in events
    assert pack["csv"]["evidence_rows"][0]["difference_minor"] == "-5000"  # a number, not a neutralised text

    # finance was alerted after the hold opened: the pack rebuilt (the late-build command) shows the deliveries
    rebuilt = _command("closeout.evidence", "incident", "--hold-id", str(hold_id))
    assert rebuilt.returncode == 0, rebuilt.stderr
    again = open_pack(warehouse.scalar("SELECT evidence_pack FROM closeout.payout_holds"))
    alerts = again["json"]["alert_deliveries"]
    assert sorted(a["channel"] for a in alerts if a["alert"] == "finance_alert") == ["email", "webhook"]
    # the reconcile task's failure notifier's deliveries for the same Airflow run are there too, sent or failed
    notifier = [a for a in alerts if a["alert"] != "finance_alert"]
    assert notifier and {a["alert"] for a in notifier} == {"failure_notifier"}
    assert all(a["status"] in ("sent", "failed") and "closeout_reconcile" in a["subject"] for a in notifier), notifier
    assert {"finance alert sent (email)", "finance alert sent (webhook)"} <= {
        t["event"] for t in again["json"]["timeline"]}  # fmt: skip
    everything = every_byte(location)
    for secret in (gate_support.API_PASSWORD, gate_support.SMTP_LOGIN[1], gate_support.WEBHOOK_TOKEN):
        assert secret.encode() not in everything

    # the pack gone from the store: the release is refused, naming the pack and the command that builds it
    artifacts.remove(location)
    refused = _release(hold_id)
    assert refused.returncode == 2
    assert location in refused.stderr and f"python -m closeout.evidence incident --hold-id {hold_id}" in refused.stderr
    assert warehouse.scalar("SELECT released_at FROM closeout.payout_holds") is None

    # built late: the pack no longer stops the release, which goes on to ask who releases (the Airflow token)
    assert _command("closeout.evidence", "incident", "--hold-id", str(hold_id)).returncode == 0
    asked = _release(hold_id, env={k: v for k, v in os.environ.items() if k != "CLOSEOUT_AIRFLOW_TOKEN"})
    assert asked.returncode == 2 and "incident pack" not in asked.stderr and "no Airflow token" in asked.stderr


def test_a_pack_the_store_refuses_stops_no_hold_and_the_release_names_the_command(warehouse, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "store-is-a-file"
    not_a_folder.write_text("the artifact store is down", encoding="utf-8")
    monkeypatch.setenv("CLOSEOUT_ARTIFACTS_URL", str(not_a_folder))
    with controls_support.login_in("closeout_pipeline") as pipeline:
        monkeypatch.setenv(controls_support.ENV_VAR, controls_support.conn_json_as(pipeline))
        with connect() as conn:  # the pipeline's own login opens the hold, as the reconcile DAG does
            hold, created = open_hold(conn, recon_run_id="recon-x", check_name="journals", period="2026-10",
                                      reason="a journal does not balance")  # fmt: skip
            assert created and hold.evidence_pack is None
            assert [h.hold_id for h in payouts_blocked(conn)] == [hold.hold_id]

        refused = _release(hold.hold_id)
        assert refused.returncode == 2
        assert f"payout hold {hold.hold_id} has no incident pack" in refused.stderr
        assert f"python -m closeout.evidence incident --hold-id {hold.hold_id}" in refused.stderr

        # the store is back: the pipeline's login builds the pack late and records it on the hold, nothing else
        monkeypatch.setenv("CLOSEOUT_ARTIFACTS_URL", str(tmp_path / "artifacts"))
        built = _command("closeout.evidence", "incident", "--hold-id", str(hold.hold_id))
        assert built.returncode == 0, built.stderr
        with connect() as conn:
            recorded = get_hold(conn, hold.hold_id)
        assert recorded is not None and recorded.evidence_pack and recorded.is_open
        pack = open_pack(recorded.evidence_pack)
        assert pack["json"]["hold"][0]["reason"] == "a journal does not balance"
        assert pack["json"]["recon_run"] == [] and pack["json"]["failing_checks"] == []  # no such run: said so

        # a pack at the recorded place that belongs to another hold does not count
        with connect() as conn:
            other, _ = open_hold(conn, recon_run_id="recon-y", check_name="stripe_fees", period="2026-10",
                                 reason="fees differ")  # fmt: skip
        assert other.evidence_pack
        with controls_support.connect_as(pipeline) as conn:
            conn.execute("SELECT closeout_data.record_hold_evidence(%s, %s)", (hold.hold_id, other.evidence_pack))
            conn.commit()
        mismatch = _release(hold.hold_id)
        assert mismatch.returncode == 2 and "is not this hold's incident pack" in mismatch.stderr


def test_the_warehouse_itself_refuses_to_release_a_hold_without_its_incident_pack(warehouse) -> None:
    """Not only the release command: closeout_data.release_payout_hold (what a finance login calls) refuses a hold
    whose pack was never recorded, naming the command that builds it, and releases it once the pack is there."""
    import psycopg

    with connect() as conn:
        hold_id = conn.execute(
            "INSERT INTO closeout_data.payout_holds (reason, recon_run_id, check_name, period, cause_key) "
            "VALUES ('a breach', 'r1', 'ar_vs_open_invoices', '2026-10', 'k-no-pack') RETURNING hold_id"
        ).fetchone()[0]
        conn.commit()
        with pytest.raises(psycopg.errors.RaiseException, match=f"closeout.evidence incident --hold-id {hold_id}"):
            conn.execute("SELECT closeout_data.release_payout_hold(%s, 'ana', 'fixed', '{}')", (hold_id,))
        conn.rollback()
        conn.execute("SELECT closeout_data.record_hold_evidence(%s, 's3://b/evidence/holds/x/index.json')",
                     (hold_id,))  # fmt: skip
        released = conn.execute("SELECT closeout_data.release_payout_hold(%s, 'ana', 'fixed', '{}')",
                                (hold_id,)).fetchone()[0]  # fmt: skip
        conn.commit()
    assert released is not None
    assert warehouse.scalar("SELECT released_by FROM closeout.payout_holds WHERE hold_id = %s", (hold_id,)) == "ana"
