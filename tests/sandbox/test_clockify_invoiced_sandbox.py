"""The Clockify sandbox's invoiced flag: PATCH /workspaces/{ws}/time-entries/invoiced marks exactly the ids given,
visible where Clockify shows it (the detailed report's invoicingState and its filter), all or nothing, with
Clockify's errors for bad bodies, unknown ids, missing auth and oversized batches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
import requests

from sandbox.clockify import ClockifySandbox, generate_dataset
from sandbox.clockify.invoiced import MAX_IDS


@pytest.fixture
def sandbox() -> Iterator[ClockifySandbox]:
    sb = ClockifySandbox(limit=None)
    sb.load(generate_dataset(12, seed=3, anchor=date(2024, 6, 28), days=20))
    sb.start()
    yield sb
    sb.stop()


def _patch(sb: ClockifySandbox, body: object, key: str | None = None) -> requests.Response:
    return requests.patch(f"{sb.api_url}/workspaces/{sb.workspace_id}/time-entries/invoiced", json=body,
                          headers={"X-Api-Key": key or sb.api_key}, timeout=10)  # fmt: skip


def _report(sb: ClockifySandbox, state: str) -> set[str]:
    body = {"dateRangeStart": "2000-01-01T00:00:00Z", "dateRangeEnd": "2030-01-01T00:00:00Z",
            "invoicingState": state, "detailedFilter": {"page": 1, "pageSize": 1000}}  # fmt: skip
    answer = requests.post(f"{sb.reports_url}/workspaces/{sb.workspace_id}/reports/detailed", json=body,
                           headers={"X-Api-Key": sb.api_key}, timeout=10)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return {item["_id"] for item in answer.json()["timeentries"]}


def test_marks_exactly_the_given_entries_and_the_report_shows_it(sandbox: ClockifySandbox) -> None:
    ids = sorted(e["id"] for e in sandbox.entries_snapshot())
    chosen = ids[:5]
    answer = _patch(sandbox, {"timeEntryIds": chosen, "invoiced": True})
    assert answer.status_code == 200 and answer.content == b""
    assert _report(sandbox, "INVOICED") == set(chosen)
    assert _report(sandbox, "UNINVOICED") == set(ids) - set(chosen)
    assert _patch(sandbox, {"timeEntryIds": chosen[:2], "invoiced": True}).status_code == 200, "idempotent"
    assert _report(sandbox, "INVOICED") == set(chosen)
    assert _patch(sandbox, {"timeEntryIds": chosen[:2], "invoiced": False}).status_code == 200
    assert _report(sandbox, "INVOICED") == set(chosen[2:])


def test_refusals_change_nothing(sandbox: ClockifySandbox) -> None:
    ids = sorted(e["id"] for e in sandbox.entries_snapshot())
    unknown = "f" * 24
    cases = [
        ({"timeEntryIds": [ids[0], unknown], "invoiced": True}, 400, "doesn't belong to Workspace"),
        ({"timeEntryIds": [], "invoiced": True}, 400, "timeEntryIds"),
        ({"timeEntryIds": ids[:1], "invoiced": "yes"}, 400, "invoiced"),
        ({"timeEntryIds": ids[:1] * (MAX_IDS + 1), "invoiced": True}, 400, "size must be between"),
    ]
    for body, status, text in cases:
        answer = _patch(sandbox, body)
        assert answer.status_code == status and text in answer.json()["message"], (body, answer.text)
    assert _patch(sandbox, {"timeEntryIds": ids[:1], "invoiced": True}, key="wrong").status_code == 401
    assert _report(sandbox, "INVOICED") == set(), "nothing changed"
