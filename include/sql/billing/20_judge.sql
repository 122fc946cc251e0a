-- Judge each dirty entry against its client's billing configuration: its state (billable, or why
-- not), its billing quantity (the tracker's rounded hours, or exact hours), and its amount: quantity
-- times the version's own rate snapshot, rounded once, half-up, to the billing currency's minor unit.
-- Contract keys are resolved through the identity map, as closeout.time_entries does.
-- A function of which entries to judge (judged before or not), so each of the two statements below
-- judges only its own entries (the planner inlines it), and its rows go straight into billing_entries:
-- a first run over a million entries writes them once. Names are not looked up here: only a new
-- line's description needs them (60_lines).
CREATE FUNCTION pg_temp.billing_judged(judged_before boolean)
RETURNS TABLE (source text, source_id text, entry_version integer, client_key text, project_key text,
               task_key text, user_key text, spent_date date, day_hours numeric, quantity numeric, rate numeric,
               entry_currency text, currency text, amount_minor bigint, period_start date, period_end date,
               base_state text, base_reason text, source_invoice_ref text)
LANGUAGE sql STABLE AS $$
    WITH e AS (
        SELECT v.source, v.source_id, v.version,
               coalesce(mc.key, v.client_key) AS client_key,
               coalesce(mp.key, v.project_key) AS project_key,
               coalesce(mt.key, v.task_key) AS task_key,
               coalesce(mu.key, v.user_key) AS user_key,
               v.client_source_id, v.project_source_id, v.task_source_id, v.user_source_id,
               v.spent_date, v.hours, v.rounded_hours, v.billable, v.approved, v.billed_in_source,
               v.source_invoice_ref, v.is_running, v.billable_rate, v.currency, v.amount_minor, v.deleted_at
        FROM closeout_data.time_entry_versions v
        LEFT JOIN closeout_data.identity_map mc
               ON mc.source = v.source AND mc.kind = 'client' AND mc.source_id = v.client_source_id
        LEFT JOIN closeout_data.identity_map mp
               ON mp.source = v.source AND mp.kind = 'project' AND mp.source_id = v.project_source_id
        LEFT JOIN closeout_data.identity_map mt
               ON mt.source = v.source AND mt.kind = 'task' AND mt.source_id = v.task_source_id
        LEFT JOIN closeout_data.identity_map mu
               ON mu.source = v.source AND mu.kind = 'user' AND mu.source_id = v.user_source_id
        -- a semi-join: the versions are matched against a hash of the (narrow) dirty set, not hashed
        WHERE (v.source, v.source_id, v.version) IN (SELECT d.source, d.source_id, d.version FROM billing_dirty d
                                                     WHERE d.known = judged_before)
    ),
    configured AS (
        -- the defaults ('*') are read once (scalar subqueries), not joined to every entry
        SELECT e.*,
               coalesce(bc.billing_period, (SELECT billing_period FROM closeout_data.billing_clients
                                             WHERE client_key = '*')) AS billing_period,
               coalesce(bc.currency, (SELECT currency FROM closeout_data.billing_clients WHERE client_key = '*'),
                        e.currency) AS billing_currency,
               coalesce(bc.require_approval, (SELECT require_approval FROM closeout_data.billing_clients
                                               WHERE client_key = '*')) AS require_approval,
               CASE coalesce(bc.rounding, (SELECT rounding FROM closeout_data.billing_clients WHERE client_key = '*'))
                    WHEN 'exact' THEN e.hours ELSE e.rounded_hours END AS quantity
        FROM e
        LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = e.client_key AND bc.client_key <> '*'
    ),
    verdicts AS (
        -- one verdict per entry, the first rule that applies; state and reason follow from it.
        -- OFFSET 0 keeps this a step of its own, so the verdict is computed once per entry rather than
        -- once per expression below that uses it (the judged rows are read whole: nothing filters them).
        SELECT c.*,
               CASE WHEN c.deleted_at IS NOT NULL THEN 'deleted'
                    WHEN c.is_running THEN 'running'
                    WHEN NOT c.billable THEN 'not_billable'
                    WHEN c.require_approval AND NOT c.approved THEN 'not_approved'
                    -- billed in the tracker on closeout's own mirror (the write-back's import) is not billed
                    -- by someone else: a non-correlated IN, hashed once per statement. Nor is an entry closeout
                    -- itself billed on an issued invoice (Clockify's invoiced flag carries no invoice reference,
                    -- and closeout sets it): once issued, closeout's invoice stands, and a tracker that also shows
                    -- it billed elsewhere is reported by the tracker_billed_state check, not credited here.
                    WHEN c.billed_in_source AND (c.source_invoice_ref IS NULL OR (c.source, c.source_invoice_ref) NOT IN (
                             SELECT w.source, r.ref FROM closeout_data.tracker_writebacks w
                             CROSS JOIN LATERAL (VALUES (w.writeback_key), (w.external_id)) r(ref)
                             WHERE w.object_kind = 'invoice' AND w.status = 'done' AND r.ref IS NOT NULL))
                         AND NOT EXISTS (
                             SELECT 1 FROM closeout_data.invoice_line_entries le
                             JOIN closeout_data.invoices i ON i.invoice_id = le.invoice_id
                             WHERE le.source_id = c.source_id AND le.source = c.source AND le.valid_to IS NULL
                               AND i.status IN ('publishing', 'open', 'paid', 'uncollectible')
                             HAVING sum(le.amount_minor) > 0)
                         THEN 'billed_in_source'
                    WHEN c.client_source_id = 'none' OR c.project_source_id = 'none' THEN 'no_client'
                    WHEN c.billable_rate IS NULL THEN 'missing_rate'
                    WHEN c.currency <> c.billing_currency THEN 'currency_mismatch'
                    WHEN c.hours < 0 OR c.quantity < 0 THEN 'negative_hours'
                    ELSE 'billable' END AS verdict
        FROM configured c
        OFFSET 0
    ),
    judged AS (
        SELECT v.*,
               CASE WHEN v.verdict IN ('no_client', 'missing_rate', 'currency_mismatch', 'negative_hours')
                    THEN 'exception' ELSE v.verdict END AS base_state,
               CASE WHEN v.verdict IN ('billed_in_source', 'no_client', 'missing_rate', 'currency_mismatch',
                                       'negative_hours') THEN v.verdict END AS base_reason
        FROM verdicts v
    )
    SELECT j.source, j.source_id, j.version AS entry_version, j.client_key, j.project_key, j.task_key, j.user_key,
           j.spent_date,
           CASE WHEN j.deleted_at IS NULL THEN j.hours ELSE 0 END AS day_hours,
           j.quantity, j.billable_rate AS rate, j.currency AS entry_currency, j.billing_currency AS currency,
           -- the capture already priced this version: rounded hours x its rate, rounded once, half-up, in its
           -- currency (for a billable entry, the billing currency); exact rounding prices the exact hours
           CASE WHEN j.verdict <> 'billable' THEN NULL
                WHEN j.quantity = j.rounded_hours THEN j.amount_minor
                ELSE round(j.quantity * j.billable_rate * (SELECT 10::numeric ^ c.exponent FROM closeout_data.currencies c
                                                            WHERE c.code = j.billing_currency))::bigint
           END AS amount_minor,
           coalesce(cal.period_start, closeout_data.period_start(j.spent_date, j.billing_period)) AS period_start,
           coalesce(cal.period_end, closeout_data.period_end(j.spent_date, j.billing_period)) AS period_end,
           j.base_state, j.base_reason, j.source_invoice_ref
    FROM judged j
    LEFT JOIN closeout_data.billing_calendar cal ON cal.kind = j.billing_period AND cal.day = j.spent_date
$$;

-- The user and day each judged entry counts toward now, collected as the rows are written (the days
-- they counted toward before are in billing_dirty): the 24-hour rule looks at these days (30_days).
CREATE TEMP TABLE billing_days (
    user_key    text COLLATE "C" NOT NULL,
    spent_date  date NOT NULL
) ON COMMIT DROP;

-- entries judged before: updated in place (this table is working state; history lives in versions)
WITH written AS (
    UPDATE closeout_data.billing_entries b SET
        entry_version = j.entry_version, client_key = j.client_key, project_key = j.project_key,
        task_key = j.task_key, user_key = j.user_key, spent_date = j.spent_date, day_hours = j.day_hours,
        quantity = j.quantity, rate = j.rate, entry_currency = j.entry_currency, currency = j.currency,
        amount_minor = j.amount_minor, period_start = j.period_start, period_end = j.period_end,
        base_state = j.base_state, base_reason = j.base_reason, state = j.base_state, reason = j.base_reason,
        source_invoice_ref = j.source_invoice_ref, evaluated_at = now()
    FROM pg_temp.billing_judged(true) j
    WHERE b.source = j.source AND b.source_id = j.source_id
    RETURNING b.user_key, b.spent_date
)
INSERT INTO billing_days (user_key, spent_date)
SELECT DISTINCT user_key, spent_date FROM written;

-- entries judged for the first time (the whole set on a first run: a plain insert, no upsert; and
-- no days to collect then, since every day is new: 30_days looks at all of them)
WITH written AS (
    INSERT INTO closeout_data.billing_entries (
        source, source_id, entry_version, client_key, project_key, task_key, user_key, spent_date, day_hours,
        quantity, rate, entry_currency, currency, amount_minor, period_start, period_end,
        base_state, base_reason, state, reason, source_invoice_ref)
    SELECT j.source, j.source_id, j.entry_version, j.client_key, j.project_key, j.task_key, j.user_key,
           j.spent_date, j.day_hours, j.quantity, j.rate, j.entry_currency, j.currency, j.amount_minor,
           j.period_start, j.period_end, j.base_state, j.base_reason, j.base_state, j.base_reason,
           j.source_invoice_ref
    FROM pg_temp.billing_judged(false) j
    RETURNING user_key, spent_date
)
INSERT INTO billing_days (user_key, spent_date)
SELECT DISTINCT user_key, spent_date FROM written
WHERE NOT (SELECT first_run FROM billing_run);
