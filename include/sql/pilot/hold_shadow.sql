-- Publish selection under the pilot: of the drafts policy would publish now (%(candidates)s), record those the
-- pilot holds in shadow (closeout_data.pilot_live is false: the client is not in the cohort, or the cohort takes
-- it from a later period), and return the ones that go out. With no cohort configured and no draft ever held,
-- every candidate goes out: today's behaviour.
WITH candidates AS (
    SELECT i.invoice_id, i.client_key, i.version, i.period_start, closeout_data.pilot_live(i.invoice_id) AS live
    FROM closeout_data.invoices i
    WHERE i.invoice_id = ANY(%(candidates)s::text[])
), held AS (
    INSERT INTO closeout_data.pilot_shadow_drafts AS s (invoice_id, client_key, reason, held_version)
    SELECT c.invoice_id, c.client_key,
           CASE WHEN EXISTS (SELECT FROM closeout_data.pilot_cohort k WHERE k.client_key = c.client_key)
                THEN 'before_cohort_period' ELSE 'not_in_cohort' END,
           c.version
    FROM candidates c
    WHERE NOT c.live
    ON CONFLICT (invoice_id) DO UPDATE
        SET reason = excluded.reason, held_version = excluded.held_version, last_held_at = clock_timestamp()
    RETURNING s.invoice_id
)
SELECT c.invoice_id FROM candidates c WHERE c.live
