"""The pacing windows on a fake clock: never more than the limit in any window (a refilling bucket that starts full
would let twice as many through), the vendor's remaining count corrects ours, a 429 holds everything off."""

from __future__ import annotations

import pytest
from closeout.accounting.api.pacing import WindowBucket
from closeout.accounting.api.quickbooks import QuickBooksSettings
from hypothesis import given, settings
from hypothesis import strategies as st


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def send_times(bucket: WindowBucket, clock: FakeClock, arrivals: list[float]) -> list[float]:
    """When each request leaves: it arrives at its time, then sleeps what the bucket says."""
    sent = []
    for arrival in arrivals:
        clock.now = max(clock.now, arrival)
        wait = bucket.reserve()
        sent.append(clock.now + wait)
    return sent


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 20), gaps=st.lists(st.floats(0, 3, allow_nan=False), min_size=1, max_size=120))
def test_no_window_ever_holds_more_than_the_limit(limit: int, gaps: list[float]) -> None:
    clock = FakeClock()
    bucket = WindowBucket(limit, 10.0, slack=0.0, clock=clock)
    arrivals, t = [], 0.0
    for gap in gaps:
        t += gap
        arrivals.append(t)
    sent = sorted(send_times(bucket, clock, arrivals))
    for i in range(len(sent) - limit):
        assert sent[i + limit] - sent[i] >= 10.0 - 1e-9


def test_a_burst_goes_out_at_once_then_one_window_later() -> None:
    clock = FakeClock()
    bucket = WindowBucket(3, 60.0, slack=1.0, clock=clock)
    assert send_times(bucket, clock, [0, 0, 0, 0, 0, 0, 0]) == [0, 0, 0, 61, 61, 61, 122]


def test_the_vendors_remaining_count_and_a_429_hold_us_back() -> None:
    clock = FakeClock()
    bucket = WindowBucket(5, 60.0, slack=0.0, clock=clock)
    assert bucket.reserve() == 0
    bucket.align(1)  # the vendor says one call is left this minute (others spent three)
    assert bucket.reserve() == 0 and bucket.next_wait() == pytest.approx(60.0)
    bucket.align(10)  # more than we think is never taken on trust
    assert bucket.next_wait() == pytest.approx(60.0)
    clock.now = 61.0
    assert bucket.next_wait() == 0
    bucket.hold_off(30.0)
    assert bucket.reserve() == pytest.approx(30.0)


def test_quickbooks_settings_refuse_a_minor_version_below_75_and_need_the_realm() -> None:
    with pytest.raises(ValueError, match="below 75"):
        QuickBooksSettings.from_extra("quickbooks_default", {"realm_id": "1", "minorversion": 65})
    with pytest.raises(ValueError, match="realm_id"):
        QuickBooksSettings.from_extra("quickbooks_default", {})
    assert QuickBooksSettings.from_extra("quickbooks_default", {"realm_id": "1"}).minorversion == 75
