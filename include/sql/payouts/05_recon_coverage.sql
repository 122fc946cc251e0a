-- The reconciliation that covers the work about to be paid: per billing period of the invoices of pending payout
-- items (those of the batches in batch_ids, or all when it is NULL), the latest finished reconciliation run that
-- covers it, and whether that run is green. A run covers an invoice's period when its period is the month the
-- invoice's period lies in, or when it is a full run (no period) whose ledger cut-off is after the period's end.
-- A period with no covering run comes back with run_id NULL. Green: every check passed or not applicable, and at
-- least one passed (the statuses come as parameters: the gate's own lists).
WITH paying AS (
    SELECT DISTINCT v.period_start, v.period_end
    FROM closeout_data.payout_items i
    JOIN closeout_data.invoices v ON v.invoice_id = i.invoice_id
    WHERE i.status = 'pending'
      AND (%(batch_ids)s::text[] IS NULL OR i.batch_id = ANY(%(batch_ids)s::text[]))
), covering AS (
    SELECT p.period_start, p.period_end, r.run_id, r.period,
           row_number() OVER (PARTITION BY p.period_start, p.period_end
                              ORDER BY r.finished_at DESC, r.run_id DESC) AS n
    FROM paying p
    JOIN closeout_data.recon_runs r
      ON r.finished_at IS NOT NULL
     AND ((r.period = to_char(p.period_start, 'YYYY-MM') AND r.period = to_char(p.period_end, 'YYYY-MM'))
          OR (r.period IS NULL AND r.ledger_cutoff >= (p.period_end + 1)::timestamptz))
)
SELECT p.period_start, p.period_end, c.run_id, c.period,
       coalesce(bool_and(k.status = ANY(%(green)s) OR k.status = ANY(%(not_blocking)s)), false)
           AND coalesce(bool_or(k.status = ANY(%(green)s)), false) AS green,
       string_agg(k.check_name || '=' || k.status, ', ' ORDER BY k.check_name)
           FILTER (WHERE NOT (k.status = ANY(%(green)s) OR k.status = ANY(%(not_blocking)s))) AS failing
FROM paying p
LEFT JOIN covering c ON c.period_start = p.period_start AND c.period_end = p.period_end AND c.n = 1
LEFT JOIN closeout_data.recon_checks k ON k.run_id = c.run_id
GROUP BY p.period_start, p.period_end, c.run_id, c.period
ORDER BY p.period_start, p.period_end
