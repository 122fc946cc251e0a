-- 0002 trackers: what Toggl, Clockify, webhooks and history imports add to capture.
--   * 'paused' sync runs: a run that spent the tracker's hourly budget stops where it is and the
--     next run continues it (it holds the one-running-sync slot meanwhile);
--   * 'import' mode for the one-time history import;
--   * identity_map: the same client, project or user in two trackers maps to one contract key;
--   * webhook_inbox: raw tracker events, unique per vendor event id, applied by the sync DAGs;
--   * tracker_entities may hold the workspace (rounding and default rates live there).

ALTER TABLE closeout_data.sync_runs DROP CONSTRAINT sync_runs_status_check;
ALTER TABLE closeout_data.sync_runs ADD CONSTRAINT sync_runs_status_check
    CHECK (status IN ('running', 'paused', 'succeeded', 'partial', 'failed', 'abandoned'));
ALTER TABLE closeout_data.sync_runs DROP CONSTRAINT sync_runs_mode_check;
ALTER TABLE closeout_data.sync_runs ADD CONSTRAINT sync_runs_mode_check
    CHECK (mode IN ('full', 'incremental', 'import'));
DROP INDEX closeout_data.sync_runs_one_running_per_source;
-- Toggl and Clockify keep rounding and default rates on the workspace: keep it with the other entities.
ALTER TABLE closeout_data.tracker_entities DROP CONSTRAINT tracker_entities_kind_check;
ALTER TABLE closeout_data.tracker_entities ADD CONSTRAINT tracker_entities_kind_check
    CHECK (kind IN ('workspace', 'client', 'project', 'task', 'user'));
CREATE UNIQUE INDEX sync_runs_one_open_per_source
    ON closeout_data.sync_runs (source) WHERE status IN ('running', 'paused');

-- Clockify has no update timestamp at all: NULL says so, where a made-up value would lie.
ALTER TABLE closeout_data.time_entry_versions ALTER COLUMN source_updated_at DROP NOT NULL;

-- Cross-tracker identity. Contract keys default to '<source>:<id>'; a row here replaces that key
-- (for example harvest client 42 and clockify client 5f3e... both -> 'client:acme').
CREATE TABLE closeout_data.identity_map (
    source      text COLLATE "C" NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('client', 'project', 'task', 'user')),
    source_id   text COLLATE "C" NOT NULL,
    key         text NOT NULL CHECK (key <> ''),
    note        text,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (source, kind, source_id)
);

CREATE TABLE closeout_data.webhook_inbox (
    inbox_id      bigserial PRIMARY KEY,
    vendor        text NOT NULL,
    event_id      text NOT NULL,
    event_type    text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    headers       jsonb NOT NULL,
    body          text NOT NULL,
    processed_at  timestamptz,
    outcome       text,
    UNIQUE (vendor, event_id)
);
CREATE INDEX webhook_inbox_pending ON closeout_data.webhook_inbox (vendor, inbox_id) WHERE processed_at IS NULL;

-- Contract keys are resolved through the identity map when read, so a mapping added later applies
-- to history too (stored versions keep the tracker's own key for audit).
CREATE OR REPLACE VIEW closeout.time_entries AS
SELECT v.source, v.source_id,
       coalesce(mc.key, v.client_key) AS client_key,
       coalesce(mp.key, v.project_key) AS project_key,
       coalesce(mt.key, v.task_key) AS task_key,
       coalesce(mu.key, v.user_key) AS user_key,
       v.spent_date, v.hours, v.billable_hours, v.billable, v.approved, v.billable_rate, v.currency,
       v.amount_minor, v.source_updated_at, v.deleted_at, v.version,
       v.rounded_hours, v.billed_in_source, v.source_invoice_ref, v.is_locked, v.is_running,
       v.notes, v.source_created_at, v.sync_run_id, v.seen_at
FROM closeout_data.time_entry_heads h
JOIN closeout_data.time_entry_versions v USING (source, source_id, version)
LEFT JOIN closeout_data.identity_map mc
       ON mc.source = v.source AND mc.kind = 'client' AND mc.source_id = v.client_source_id
LEFT JOIN closeout_data.identity_map mp
       ON mp.source = v.source AND mp.kind = 'project' AND mp.source_id = v.project_source_id
LEFT JOIN closeout_data.identity_map mt
       ON mt.source = v.source AND mt.kind = 'task' AND mt.source_id = v.task_source_id
LEFT JOIN closeout_data.identity_map mu
       ON mu.source = v.source AND mu.kind = 'user' AND mu.source_id = v.user_source_id;

CREATE VIEW closeout.identity_map AS
SELECT source, kind, source_id, key, note, updated_at FROM closeout_data.identity_map;
