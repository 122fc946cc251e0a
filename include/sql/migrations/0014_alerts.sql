-- 0014 alerts: the causes of task failures and the alerts sent for them, so that repeated failures of the
-- same cause do not flood the platform team or finance (DESIGN.md "Alerts": one alert per new cause).
--
-- Task failure callbacks run in the worker without access to Airflow's metadata database, so the record
-- lives in the warehouse. A cause is identified by a stable fingerprint: DAG, task, exception type and the
-- exception message with run-specific parts (run ids, timestamps, numbers) normalised away. At most one
-- cause per fingerprint is open (partial unique index); a later success of the same DAG task resolves it,
-- so the same failure after a fix is a new cause and alerts again.
--
-- alert_deliveries has one row per cause and channel: 'sent' once delivered (never sent again for that
-- cause), 'failed' with the reason (without secrets) while the receiver is down; a failed channel is tried
-- again on the next failure of the same cause, alone.

CREATE TABLE closeout_data.alert_causes (
    cause_id         bigserial PRIMARY KEY,
    fingerprint      text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    dag_id           text NOT NULL CHECK (dag_id <> ''),
    task_id          text NOT NULL CHECK (task_id <> ''),
    exception_type   text NOT NULL,
    normalised       text NOT NULL,
    message          text NOT NULL,
    money            boolean NOT NULL,
    first_run_id     text,
    last_run_id      text,
    first_seen_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    occurrences      integer NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    resolved_at      timestamptz,
    resolved_by_run  text
);
CREATE UNIQUE INDEX alert_causes_one_open ON closeout_data.alert_causes (fingerprint) WHERE resolved_at IS NULL;
CREATE INDEX alert_causes_open_task ON closeout_data.alert_causes (dag_id, task_id) WHERE resolved_at IS NULL;

CREATE TABLE closeout_data.alert_deliveries (
    cause_id      bigint NOT NULL REFERENCES closeout_data.alert_causes,
    channel       text NOT NULL CHECK (channel IN ('platform_webhook', 'finance_smtp', 'finance_webhook')),
    status        text NOT NULL CHECK (status IN ('sent', 'failed')),
    subject       text NOT NULL,
    attempts      integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    last_error    text,
    attempted_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at       timestamptz,
    PRIMARY KEY (cause_id, channel),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

CREATE VIEW closeout.alert_causes AS
SELECT cause_id, dag_id, task_id, exception_type, message, money, occurrences, first_seen_at, last_seen_at,
       first_run_id, last_run_id, resolved_at, resolved_by_run, fingerprint
FROM closeout_data.alert_causes;

-- Every alert a failure notifier delivered (or tried to): which cause, which channel, when.
CREATE VIEW closeout.alerts_sent AS
SELECT d.cause_id, c.dag_id, c.task_id, d.channel, d.status, d.subject, d.attempts, d.last_error,
       d.attempted_at, d.sent_at, c.occurrences, c.resolved_at
FROM closeout_data.alert_deliveries d
JOIN closeout_data.alert_causes c USING (cause_id);
