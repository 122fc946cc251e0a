-- Judge each dirty entry against its client's billing configuration: its state (billable, or why
-- not), its billing quantity (the tracker's rounded hours, or exact hours), and its amount: quantity
-- times the version's own rate snapshot, rounded once, half-up, to the billing currency's minor unit.
-- Contract keys are resolved through the identity map, as closeout.time_entries does.
-- A view, not a table: the next script writes its rows straight into billing_entries (an update for
-- entries judged before, an insert for new ones), so a first run over a million entries writes them once.
CREATE TEMP VIEW billing_judged AS
WITH e AS (
    SELECT v.source, v.source_id, v.version, d.known,
           coalesce(mc.key, v.client_key) AS client_key,
           coalesce(mp.key, v.project_key) AS project_key,
           coalesce(mt.key, v.task_key) AS task_key,
           coalesce(mu.key, v.user_key) AS user_key,
           v.client_source_id, v.project_source_id, v.task_source_id, v.user_source_id,
           v.spent_date, v.hours, v.rounded_hours, v.billable, v.approved, v.billed_in_source,
           v.source_invoice_ref, v.is_running, v.billable_rate, v.currency, v.deleted_at
    FROM billing_dirty d
    JOIN closeout_data.time_entry_heads h ON h.source = d.source AND h.source_id = d.source_id
    JOIN closeout_data.time_entry_versions v
      ON v.source = h.source AND v.source_id = h.source_id AND v.version = h.version
    LEFT JOIN closeout_data.identity_map mc
           ON mc.source = v.source AND mc.kind = 'client' AND mc.source_id = v.client_source_id
    LEFT JOIN closeout_data.identity_map mp
           ON mp.source = v.source AND mp.kind = 'project' AND mp.source_id = v.project_source_id
    LEFT JOIN closeout_data.identity_map mt
           ON mt.source = v.source AND mt.kind = 'task' AND mt.source_id = v.task_source_id
    LEFT JOIN closeout_data.identity_map mu
           ON mu.source = v.source AND mu.kind = 'user' AND mu.source_id = v.user_source_id
),
configured AS (
    SELECT e.*,
           coalesce(bc.billing_period, df.billing_period) AS billing_period,
           coalesce(bc.currency, df.currency, e.currency) AS billing_currency,
           coalesce(bc.require_approval, df.require_approval) AS require_approval,
           CASE coalesce(bc.rounding, df.rounding) WHEN 'exact' THEN e.hours ELSE e.rounded_hours END AS quantity
    FROM e
    CROSS JOIN (SELECT * FROM closeout_data.billing_clients WHERE client_key = '*') df
    LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = e.client_key AND bc.client_key <> '*'
),
verdicts AS (
    -- one verdict per entry, the first rule that applies; state, reason and field follow from it
    SELECT c.*,
           CASE WHEN c.deleted_at IS NOT NULL THEN 'deleted'
                WHEN c.is_running THEN 'running'
                WHEN NOT c.billable THEN 'not_billable'
                WHEN c.require_approval AND NOT c.approved THEN 'not_approved'
                WHEN c.billed_in_source THEN 'billed_in_source'
                WHEN c.client_source_id = 'none' OR c.project_source_id = 'none' THEN 'no_client'
                WHEN c.billable_rate IS NULL THEN 'missing_rate'
                WHEN c.currency <> c.billing_currency THEN 'currency_mismatch'
                WHEN c.hours < 0 OR c.quantity < 0 THEN 'negative_hours'
                ELSE 'billable' END AS verdict
    FROM configured c
),
judged AS (
    SELECT v.*,
           CASE WHEN v.verdict IN ('no_client', 'missing_rate', 'currency_mismatch', 'negative_hours')
                THEN 'exception' ELSE v.verdict END AS base_state,
           CASE WHEN v.verdict IN ('billed_in_source', 'no_client', 'missing_rate', 'currency_mismatch',
                                   'negative_hours') THEN v.verdict END AS base_reason,
           CASE v.verdict WHEN 'billed_in_source' THEN 'billed_in_source' WHEN 'no_client' THEN 'client'
                          WHEN 'missing_rate' THEN 'billable_rate' WHEN 'currency_mismatch' THEN 'currency'
                          WHEN 'negative_hours' THEN 'hours' END AS base_field
    FROM verdicts v
)
SELECT j.source, j.source_id, j.known, j.version AS entry_version, j.client_key, j.project_key, j.task_key, j.user_key,
       j.spent_date,
       CASE WHEN j.deleted_at IS NULL THEN j.hours ELSE 0 END AS day_hours,
       j.quantity, j.billable_rate AS rate, j.currency AS entry_currency, j.billing_currency AS currency,
       CASE WHEN j.base_state = 'billable'
            THEN round(j.quantity * j.billable_rate * (10::numeric ^ cur.exponent))::bigint END AS amount_minor,
       coalesce(cal.period_start, closeout_data.period_start(j.spent_date, j.billing_period)) AS period_start,
       coalesce(cal.period_end, closeout_data.period_end(j.spent_date, j.billing_period)) AS period_end,
       j.base_state, j.base_reason, j.base_field, j.source_invoice_ref,
       pe.name AS project_name, te.name AS task_name, ue.name AS user_name
FROM judged j
JOIN closeout_data.currencies cur ON cur.code = j.billing_currency
LEFT JOIN closeout_data.billing_calendar cal ON cal.kind = j.billing_period AND cal.day = j.spent_date
LEFT JOIN closeout_data.tracker_entities pe
       ON pe.source = j.source AND pe.kind = 'project' AND pe.source_id = j.project_source_id
LEFT JOIN closeout_data.tracker_entities te
       ON te.source = j.source AND te.kind = 'task' AND te.source_id = j.task_source_id
LEFT JOIN closeout_data.tracker_entities ue
       ON ue.source = j.source AND ue.kind = 'user' AND ue.source_id = j.user_source_id;
