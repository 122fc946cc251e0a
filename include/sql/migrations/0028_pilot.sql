-- Pilot and shadow mode (issue 14 item 8, docs/pilot.md).
--
-- A configured cohort of clients is published to Stripe and paid out; every other client is drafted, reconciled
-- and compared but not published (its drafts held in 'shadow') and not paid out. The cohort is mirrored here
-- from the pilot configuration (closeout.pilot.config) by every publish run, payout plan and comparison run, so
-- the SQL of each stage reads the same rule. No cohort row = pilot mode off = every client as before, except
-- that a draft once held in shadow is never published by turning the pilot off (its period may have been
-- invoiced from the tracker meanwhile): only a cohort that covers its period releases it.

-- The cohort: a client and the first billing period closeout publishes and pays out for it.
CREATE TABLE closeout_data.pilot_cohort (
    client_key   text PRIMARY KEY CHECK (client_key <> ''),
    from_period  date NOT NULL,
    added_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Every load of the pilot configuration that changed something, as loaded.
CREATE TABLE closeout_data.pilot_config_loads (
    load_id       bigserial PRIMARY KEY,
    loaded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    origin        text NOT NULL,
    content_hash  text NOT NULL,
    cohort_size   integer NOT NULL,
    content       jsonb NOT NULL
);

-- Drafts the publish stage held back because their client (or their period) is not in the cohort.
CREATE TABLE closeout_data.pilot_shadow_drafts (
    invoice_id      text PRIMARY KEY REFERENCES closeout_data.invoices,
    client_key      text NOT NULL,
    reason          text NOT NULL CHECK (reason IN ('not_in_cohort', 'before_cohort_period')),
    held_version    integer NOT NULL,
    first_held_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_held_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Whether closeout may publish and pay out this invoice under the pilot: mode off and never held in shadow, or
-- its client is in the cohort from a period at or before the invoice's.
CREATE FUNCTION closeout_data.pilot_live(invoice text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT FROM closeout_data.pilot_cohort)
                THEN NOT EXISTS (SELECT FROM closeout_data.pilot_shadow_drafts s WHERE s.invoice_id = invoice)
                ELSE EXISTS (SELECT FROM closeout_data.invoices i
                             JOIN closeout_data.pilot_cohort c ON c.client_key = i.client_key
                             WHERE i.invoice_id = invoice AND c.from_period <= i.period_start) END
$$;

-- One comparison run (closeout_pilot_compare): what it compared, and the verdict.
CREATE TABLE closeout_data.pilot_comparison_runs (
    run_id         text PRIMARY KEY,
    compared_on    date NOT NULL,
    periods        text[] NOT NULL,
    cohort_size    integer NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at    timestamptz,
    mismatches     integer NOT NULL DEFAULT 0,
    breaches       integer NOT NULL DEFAULT 0,
    criteria       jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- Per run, client, month and currency: source entries against invoice lines, and against the tracker's billing.
CREATE TABLE closeout_data.pilot_comparisons (
    run_id                 text NOT NULL REFERENCES closeout_data.pilot_comparison_runs,
    compared_on            date NOT NULL,
    client_key             text NOT NULL,
    period                 text NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),
    currency               text NOT NULL,
    cohort                 boolean NOT NULL,
    source_hours           numeric NOT NULL,
    source_minor           bigint NOT NULL,
    invoiced_hours         numeric NOT NULL,
    invoiced_minor         bigint NOT NULL,
    awaiting_approval      integer NOT NULL,
    entries_not_invoiced   integer NOT NULL,
    lines_without_entry    integer NOT NULL,
    amount_differences     integer NOT NULL,
    amount_difference_minor bigint NOT NULL,
    tracker_compared       boolean NOT NULL,
    tracker_billed_hours   numeric NOT NULL,
    tracker_billed_minor   bigint NOT NULL,
    tracker_differences    integer NOT NULL,
    tracker_difference_minor bigint NOT NULL,
    hard_mismatches        integer NOT NULL,
    status                 text NOT NULL CHECK (status IN ('match', 'mismatch')),
    PRIMARY KEY (run_id, client_key, period, currency)
);
CREATE INDEX pilot_comparisons_by_client ON closeout_data.pilot_comparisons (client_key, compared_on);

-- The differences behind each comparison row, one per entry: the evidence finance reads.
CREATE TABLE closeout_data.pilot_comparison_items (
    run_id            text NOT NULL REFERENCES closeout_data.pilot_comparison_runs,
    client_key        text NOT NULL,
    period            text NOT NULL,
    currency          text NOT NULL,
    kind              text NOT NULL,
    item              text NOT NULL,
    hard              boolean NOT NULL,
    hours_difference  numeric NOT NULL,
    difference_minor  bigint NOT NULL,
    detail            text
);
CREATE INDEX pilot_comparison_items_by_run ON closeout_data.pilot_comparison_items (run_id, client_key, period);

-- Rollback criteria a run found breached (cohort clients only), and the alert cause that told people.
CREATE TABLE closeout_data.pilot_breaches (
    run_id        text NOT NULL REFERENCES closeout_data.pilot_comparison_runs,
    client_key    text NOT NULL,
    period        text NOT NULL,
    criterion     text NOT NULL CHECK (criterion IN ('hard_mismatch', 'amount_tolerance', 'consecutive_failing_days')),
    observed      text NOT NULL,
    threshold     text NOT NULL,
    alert_cause_id bigint REFERENCES closeout_data.alert_causes,
    PRIMARY KEY (run_id, client_key, period, criterion)
);

-- Payout work on an invoice the pilot does not cover is reported, never silently dropped.
ALTER TABLE closeout_data.payout_exceptions DROP CONSTRAINT payout_exceptions_reason_check;
ALTER TABLE closeout_data.payout_exceptions ADD CONSTRAINT payout_exceptions_reason_check
    CHECK (reason IN ('no_payee_config', 'non_positive_amount', 'dispute_open', 'not_payable', 'currency_minor_unit',
                      'pilot_shadow'));

-- Public views (finance and auditors).
CREATE VIEW closeout.pilot_cohort AS
SELECT client_key, from_period, added_at FROM closeout_data.pilot_cohort;

-- Drafts held in shadow: 'shadow' while still a draft that closeout does not publish; 'released' once a cohort
-- covering its period let it go out (or it was voided, 'void').
CREATE VIEW closeout.pilot_shadow_drafts AS
SELECT s.invoice_id, i.client_key, i.period_start, i.period_end, i.currency, i.version, i.total_minor,
       i.line_count, i.status,
       CASE WHEN i.status = 'draft' THEN 'shadow' WHEN i.status = 'void' THEN 'void' ELSE 'released' END
           AS pilot_state,
       s.reason, s.held_version, s.first_held_at, s.last_held_at
FROM closeout_data.pilot_shadow_drafts s
JOIN closeout_data.invoices i USING (invoice_id);

CREATE VIEW closeout.pilot_comparisons AS
SELECT c.run_id, c.compared_on, c.client_key, c.period, c.currency, c.cohort, c.status, c.source_hours,
       c.source_minor, c.invoiced_hours, c.invoiced_minor, c.invoiced_minor - c.source_minor AS difference_minor,
       c.awaiting_approval, c.entries_not_invoiced, c.lines_without_entry, c.amount_differences,
       c.amount_difference_minor, c.tracker_compared, c.tracker_billed_hours, c.tracker_billed_minor,
       c.tracker_differences, c.tracker_difference_minor, c.hard_mismatches
FROM closeout_data.pilot_comparisons c;

CREATE VIEW closeout.pilot_comparison_items AS
SELECT run_id, client_key, period, currency, kind, item, hard, hours_difference, difference_minor, detail
FROM closeout_data.pilot_comparison_items;

CREATE VIEW closeout.pilot_comparison_runs AS
SELECT run_id, compared_on, periods, cohort_size, started_at, finished_at, mismatches, breaches, criteria
FROM closeout_data.pilot_comparison_runs;

CREATE VIEW closeout.pilot_breaches AS
SELECT b.run_id, r.compared_on, b.client_key, b.period, b.criterion, b.observed, b.threshold, b.alert_cause_id
FROM closeout_data.pilot_breaches b
JOIN closeout_data.pilot_comparison_runs r USING (run_id);

GRANT SELECT ON closeout.pilot_cohort, closeout.pilot_shadow_drafts, closeout.pilot_comparisons,
    closeout.pilot_comparison_items, closeout.pilot_comparison_runs, closeout.pilot_breaches
    TO closeout_pipeline, closeout_finance;
GRANT EXECUTE ON FUNCTION closeout_data.pilot_live(text) TO closeout_pipeline, closeout_finance;
