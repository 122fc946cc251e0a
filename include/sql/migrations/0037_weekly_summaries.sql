-- Weekly time and cost summary (issue 16 item 5, DAG closeout_weekly_summary).
--
-- One row per ISO week: the figures as they were summarised (a JSON snapshot, so "what changed since" can be
-- answered later), where the files went (artifact locations, never links), and the e-mail's delivery identity.
-- A rerun re-renders and overwrites the row's figures and files but never sends again: sending is claimed
-- (sending_message_id) before the SMTP call and completed (sent_at) after it, so a worker killed in between
-- resends under the same Message-ID. Finance asking again (`resend`) is recorded in `resends`, once per
-- Airflow run, each with its own Message-ID.
CREATE TABLE closeout_data.weekly_summaries (
    week                text PRIMARY KEY CHECK (week ~ '^[0-9]{4}-W(0[1-9]|[1-4][0-9]|5[0-3])$'),
    week_start          date NOT NULL,
    week_end            date NOT NULL CHECK (week_end = week_start + 6),
    figures             jsonb NOT NULL,
    figures_at          timestamptz NOT NULL,
    artifacts           jsonb NOT NULL DEFAULT '{}'::jsonb,
    renders             integer NOT NULL DEFAULT 1 CHECK (renders >= 1),
    generated_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    airflow_run_id      text,
    sending_message_id  text,
    sent_at             timestamptz,
    message_id          text,
    recipients          text[],
    sends               integer NOT NULL DEFAULT 0 CHECK (sends >= 0),
    resends             jsonb NOT NULL DEFAULT '[]'::jsonb,
    CHECK (sent_at IS NULL OR message_id IS NOT NULL)
);

-- The figures of a week as a given week's summary saw them: its own week, and each earlier week it restated.
-- The baseline for "changes since last summarised" of week X, in the summary of week W, is the latest row of X
-- made by a summary before W: a rerun of W compares against the same baseline, so it reports the same changes.
CREATE TABLE closeout_data.weekly_summary_figures (
    week            text NOT NULL,
    summarised_in   text NOT NULL REFERENCES closeout_data.weekly_summaries (week) ON DELETE CASCADE,
    figures_at      timestamptz NOT NULL,
    figures         jsonb NOT NULL,
    PRIMARY KEY (week, summarised_in)
);

CREATE VIEW closeout.weekly_summaries AS
SELECT week, week_start, week_end, figures, figures_at, artifacts, renders, generated_at, airflow_run_id,
       sent_at, message_id, recipients, sends, resends
FROM closeout_data.weekly_summaries;

GRANT SELECT, INSERT, UPDATE ON closeout_data.weekly_summaries, closeout_data.weekly_summary_figures
    TO closeout_pipeline;
GRANT DELETE ON closeout_data.weekly_summary_figures TO closeout_pipeline;
GRANT SELECT ON closeout_data.weekly_summaries, closeout_data.weekly_summary_figures TO closeout_finance;
GRANT SELECT ON closeout.weekly_summaries TO closeout_pipeline, closeout_finance;
