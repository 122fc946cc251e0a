"""The receiver's limits come from the API server's environment; a malformed value names its variable."""

from __future__ import annotations

import pytest
from closeout.webhooks import settings as receiver_settings
from closeout.webhooks.settings import ReceiverSettings


def test_defaults_fit_the_vendors(monkeypatch):
    for name in dir(receiver_settings):
        if name.endswith("_ENV"):
            monkeypatch.delenv(getattr(receiver_settings, name), raising=False)
    defaults = ReceiverSettings.from_env()
    assert defaults.max_body_bytes == 1024 * 1024
    assert defaults.db_threads >= 1 and defaults.connect_timeout_seconds >= 1 and defaults.statement_timeout_ms > 0


def test_values_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("CLOSEOUT_WEBHOOK_MAX_BODY_BYTES", "65_536")
    monkeypatch.setenv("CLOSEOUT_WEBHOOK_DB_THREADS", "2")
    monkeypatch.setenv("CLOSEOUT_WEBHOOK_STATEMENT_TIMEOUT_MS", "750")
    monkeypatch.setenv("CLOSEOUT_WEBHOOK_BODY_TIMEOUT_SECONDS", "2.5")
    got = ReceiverSettings.from_env()
    assert (got.max_body_bytes, got.db_threads, got.statement_timeout_ms, got.body_timeout_seconds) == (
        65536, 2, 750, 2.5)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value"),
    [("CLOSEOUT_WEBHOOK_MAX_BODY_BYTES", "1MB"), ("CLOSEOUT_WEBHOOK_MAX_BODY_BYTES", "0"),
     ("CLOSEOUT_WEBHOOK_DB_THREADS", "0"), ("CLOSEOUT_WEBHOOK_DB_QUEUE", "-1"),
     ("CLOSEOUT_WEBHOOK_CONNECT_TIMEOUT_SECONDS", "0"), ("CLOSEOUT_WEBHOOK_STATEMENT_TIMEOUT_MS", "0"),
     ("CLOSEOUT_WEBHOOK_BODY_TIMEOUT_SECONDS", "nan"), ("CLOSEOUT_WEBHOOK_SECRETS_TTL_SECONDS", "soon")],
)  # fmt: skip
def test_a_malformed_value_names_its_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        ReceiverSettings.from_env()


def test_refusals_are_logged_once_per_kind_per_interval_with_the_count_of_the_rest():
    import logging

    from closeout.webhooks.refusals import RefusalLog

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    logger = logging.getLogger("closeout.test.refusals")
    collect = Collect()
    logger.addHandler(collect)
    now = [100.0]
    refusals = RefusalLog(logger, interval_seconds=10, clock=lambda: now[0])
    try:
        for _ in range(1000):  # a flood of forged requests
            refusals.warning("stripe:401", "stripe webhook rejected: %s", "signature does not match")
        refusals.warning("toggl:401", "toggl webhook rejected: %s", "missing header")  # another kind: logged
        now[0] += 11
        refusals.warning("stripe:401", "stripe webhook rejected: %s", "signature does not match")
    finally:
        logger.removeHandler(collect)
    assert collect.messages == [
        "stripe webhook rejected: signature does not match",
        "toggl webhook rejected: missing header",
        "stripe webhook rejected: signature does not match (and 999 more like it in the last 11 s, not logged)",
    ]
