"""The crash points themselves: every point ``closeout.faults`` declares has a case in the crash matrix (a new
point without one fails here), an armed point kills its process by SIGKILL and nothing else, an unarmed one does
nothing, and a name that is not declared is refused rather than silently testing nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from closeout import faults
from conftest import ROOT
from test_crash_alerts import ALERT_POINTS
from test_crash_corrections import BALANCE_POINTS, CREDIT_NOTE_POINTS
from test_crash_export import EXPORT_POINTS
from test_crash_payouts import TRANSFER_POINTS
from test_crash_publish import PUBLISH_POINTS

sys.path.insert(0, str(ROOT / "tests" / "writeback"))  # the write-back's cases live there
from test_writeback_crash import WRITEBACK_POINTS

MATRIX = [*PUBLISH_POINTS, *CREDIT_NOTE_POINTS, *BALANCE_POINTS, *TRANSFER_POINTS, *ALERT_POINTS, *EXPORT_POINTS,
          *WRITEBACK_POINTS]


def test_every_declared_point_has_a_case_in_the_matrix_and_no_case_is_undeclared() -> None:
    assert len(MATRIX) == len(set(MATRIX)), "a point is in two cases"
    assert sorted(set(faults.POINTS) - set(MATRIX)) == [], "declared crash points without a crash-matrix case"
    assert sorted(set(MATRIX) - set(faults.POINTS)) == [], "crash-matrix cases for points the code does not declare"


def _child(code: str, crash_at: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != faults.ENV_VAR}
    if crash_at is not None:
        env[faults.ENV_VAR] = crash_at
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


STEP = "from closeout import faults; print('before'); faults.point('export.before_upload'); print('after')"


def test_an_armed_point_kills_the_process_by_sigkill_there() -> None:
    done = _child(STEP, "alert.email.after_send, export.before_upload")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == "before\n"


@pytest.mark.parametrize("crash_at", [None, "", "alert.email.after_send"])
def test_a_point_not_armed_does_nothing(crash_at: str | None) -> None:
    done = _child(STEP, crash_at)
    assert (done.returncode, done.stdout) == (0, "before\nafter\n"), done.stderr


def test_an_undeclared_name_is_refused_in_the_setting_and_in_the_code() -> None:
    typo = _child(STEP, "export.before_uplaod")
    assert typo.returncode == 1 and "UnknownCrashPoint" in typo.stderr and "export.before_uplaod" in typo.stderr
    undeclared = _child("from closeout import faults; faults.point('stripe.payout.create.before_call')",
                        "export.before_upload")  # fmt: skip
    assert undeclared.returncode == 1 and "not declared" in undeclared.stderr
