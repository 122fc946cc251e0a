"""Shared tracker HTTP plumbing: pacing, Retry-After, retry policy, URL redaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from closeout.trackers.transport import Pacer, RetryPolicy, redact_url, retry_after_seconds


class FakeTime:
    """A clock that only moves when the pacer sleeps (or the test advances it)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds

    def pacer(self, max_requests: int, per_seconds: float) -> Pacer:
        return Pacer(max_requests, per_seconds, sleep=self.sleep, clock=self.clock)


# -- Pacer -----------------------------------------------------------------------------------------------
def test_pacer_allows_a_full_window_then_waits_for_the_oldest_to_leave():
    t = FakeTime()
    pacer = t.pacer(3, 10.0)

    for offset in (0.0, 1.0, 2.0):
        t.now = 1000.0 + offset
        assert pacer.wait_turn() == 0.0
    assert t.sleeps == []

    t.now = 1004.0
    assert pacer.wait_turn() == pytest.approx(6.0)  # the request at 1000 leaves the window at 1010
    assert t.sleeps == [pytest.approx(6.0)]
    assert t.now == pytest.approx(1010.0)

    # next: the one at 1001 must leave, 1 s later
    assert pacer.wait_turn() == pytest.approx(1.0)
    assert t.now == pytest.approx(1011.0)


def test_pacer_never_exceeds_the_window_over_a_long_run():
    t = FakeTime()
    pacer = t.pacer(5, 2.0)
    sent = []
    for _ in range(50):
        pacer.wait_turn()
        sent.append(t.now)
        t.now += 0.01
    for i in range(len(sent) - 5):
        assert sent[i + 5] - sent[i] >= 2.0 - 1e-9  # any 6 consecutive requests span at least one window


def test_pacer_does_not_wait_after_the_window_has_passed():
    t = FakeTime()
    pacer = t.pacer(2, 5.0)
    pacer.wait_turn()
    pacer.wait_turn()
    t.now += 5.0
    assert pacer.wait_turn() == 0.0
    assert t.sleeps == []


def test_pacer_with_zero_max_requests_never_sleeps():
    t = FakeTime()
    pacer = t.pacer(0, 15.0)
    for _ in range(1000):
        assert pacer.wait_turn() == 0.0
    assert t.sleeps == []


def test_seed_continues_the_window_of_earlier_requests():
    t = FakeTime()
    pacer = t.pacer(5, 1.0)
    pacer.seed([0.1, 0.2, 0.3, 0.4, 0.5])  # a full window, the oldest sent 0.5 s ago

    assert pacer.wait_turn() == pytest.approx(0.5)
    assert t.sleeps == [pytest.approx(0.5)]


def test_seed_ignores_requests_outside_the_window_and_keeps_the_newest():
    t = FakeTime()
    pacer = t.pacer(3, 1.0)
    pacer.seed([5.0, 1.0, -1.0])  # too old, exactly one window old, from the future: none count
    assert pacer.wait_turn() == 0.0

    t2 = FakeTime()
    pacer2 = t2.pacer(3, 1.0)
    pacer2.seed([0.5, 0.4, 0.3, 0.2, 0.1])  # 5 in the window, limit 3: wait until only 2 remain
    assert pacer2.wait_turn() == pytest.approx(0.7)


def test_seed_with_room_left_does_not_wait():
    t = FakeTime()
    pacer = t.pacer(10, 1.0)
    pacer.seed([0.1, 0.2, 0.3, 0.4, 0.5])
    for _ in range(5):
        assert pacer.wait_turn() == 0.0
    assert pacer.wait_turn() == pytest.approx(0.5)


def test_penalise_on_an_empty_window_makes_the_next_call_wait_that_long():
    t = FakeTime()
    pacer = t.pacer(3, 10.0)
    pacer.penalise(4.0)
    assert pacer.wait_turn() == pytest.approx(4.0)
    # the penalty filled the window once only
    assert pacer.wait_turn() == 0.0


def test_penalise_on_a_partly_used_window_waits_at_least_that_long():
    t = FakeTime()
    pacer = t.pacer(3, 10.0)
    pacer.wait_turn()  # at 1000
    t.now += 1.0
    pacer.penalise(5.0)
    assert pacer.wait_turn() >= 5.0


def test_penalise_on_a_full_window_waits_at_least_that_long():
    t = FakeTime()
    pacer = t.pacer(3, 10.0)
    for _ in range(3):
        pacer.wait_turn()
        t.now += 1.0  # sent at 1000, 1001, 1002; now 1003
    pacer.penalise(8.0)  # the server says: nothing before 1011
    assert pacer.wait_turn() >= 8.0  # waits 7.0 (until 1010)


def test_penalise_is_a_no_op_without_pacing():
    t = FakeTime()
    pacer = t.pacer(0, 10.0)
    pacer.penalise(30.0)
    assert pacer.wait_turn() == 0.0


# -- Retry-After -------------------------------------------------------------------------------------------
def test_retry_after_delta_seconds():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(" 120 ") == 120.0
    assert retry_after_seconds("0") == 0.0


def test_retry_after_http_date():
    when = datetime.now(UTC) + timedelta(seconds=10)
    assert 8.5 <= retry_after_seconds(format_datetime(when, usegmt=True)) <= 10.5


def test_retry_after_http_date_in_the_past_is_zero():
    assert retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT") == 0.0
    assert retry_after_seconds("Sunday, 06-Nov-94 08:49:37 GMT") == 0.0  # RFC 850 form


def test_retry_after_asctime_http_date():
    assert retry_after_seconds("Sun Nov  6 08:49:37 1994") == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "Mon, 99 Foo 2026"])
def test_retry_after_unreadable_falls_back_to_the_default(value):
    assert retry_after_seconds(value) == 15.0
    assert retry_after_seconds(value, default=42.0) == 42.0


def test_retry_after_negative_is_zero():
    assert retry_after_seconds("-4") == 0.0


# -- RetryPolicy -------------------------------------------------------------------------------------------
def test_with_overrides_accepts_known_fields():
    policy = RetryPolicy()
    changed = policy.with_overrides({"max_attempts": 8, "backoff_cap": 2.0})
    assert (changed.max_attempts, changed.backoff_cap) == (8, 2.0)
    assert changed.backoff_base == policy.backoff_base
    assert policy.max_attempts == 6  # the original is untouched
    assert policy.with_overrides(None) is policy
    assert policy.with_overrides({}) is policy


@pytest.mark.parametrize("overrides", [{"max_attemps": 8}, {"max_attempts": 8, "bogus": 1}, {"timeout": [1, 2]}])
def test_with_overrides_rejects_unknown_fields(overrides):
    with pytest.raises(ValueError, match="unknown retry settings"):
        RetryPolicy().with_overrides(overrides)


def test_backoff_stays_between_zero_and_the_cap():
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=4.0)
    for attempt in range(1, 30):
        limit = min(4.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(50):
            assert 0.0 <= policy.backoff(attempt) <= limit
    # it is jittered, not constant
    assert len({policy.backoff(10) for _ in range(20)}) > 1


# -- redact_url --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:secret@api.example.com/v2/x?page=2", "https://api.example.com/v2/x?page=2"),
        ("https://user:secret@api.example.com:8443/v2/x#frag", "https://api.example.com:8443/v2/x#frag"),
        ("https://token@api.example.com/v2", "https://api.example.com/v2"),
        ("https://api.example.com/v2/time_entries?page=3", "https://api.example.com/v2/time_entries?page=3"),
    ],
)
def test_redact_url_strips_credentials(url, expected):
    redacted = redact_url(url)
    assert redacted == expected
    assert "secret" not in redacted


def test_redact_url_keeps_ipv6_hosts_valid():
    assert redact_url("https://user:secret@[::1]:8080/v2") == "https://[::1]:8080/v2"
