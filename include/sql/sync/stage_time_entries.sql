-- Per-session staging for one page of normalised entries; emptied at every commit.
CREATE TEMP TABLE IF NOT EXISTS stage_time_entries (
    source_id           text COLLATE "C" NOT NULL,
    client_source_id    text NOT NULL,
    project_source_id   text NOT NULL,
    task_source_id      text,
    user_source_id      text NOT NULL,
    spent_date          date NOT NULL,
    hours               numeric NOT NULL,
    rounded_hours       numeric NOT NULL,
    billable            boolean NOT NULL,
    approved            boolean NOT NULL,
    billed_in_source    boolean NOT NULL,
    source_invoice_ref  text,
    is_locked           boolean NOT NULL,
    is_running          boolean NOT NULL,
    billable_rate       numeric,
    currency            text NOT NULL,
    notes               text,
    source_created_at   timestamptz,
    source_updated_at   timestamptz
) ON COMMIT DELETE ROWS
