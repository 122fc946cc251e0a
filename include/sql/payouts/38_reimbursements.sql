-- Reimbursements (migration 0038, docs/expense-books.md): an expense the person paid (its latest booking in
-- closeout_data.expense_bookings says paid_by 'person'; the ledger booked it to reimbursements_payable) is owed
-- to that person as a positive payout adjustment (kind and reason 'reimbursement', cause 'expense', source_ref
-- the expense version), which netting adds to the payee's next transfer in that currency. When a later version
-- changes what is owed (edited, deleted, unapproved, paid by the company after all, moved to another currency or
-- person), a correcting row records the difference, linked to the expense's previous reimbursement
-- (corrects_adjustment_id); rows are never edited. A negative correction is netted from the next transfers like a
-- clawback, never below zero.
-- Only payees with payout setup are owed through payouts: an active payee (closeout_data.payout_payees, with its
-- Stripe account) in the expense's currency. Anyone else stays listed in closeout.unpaid_reimbursements until
-- set up; the row is recorded by the first plan after that.
WITH latest AS (
    SELECT DISTINCT ON (b.source, b.source_id) b.source, b.source_id, b.version, b.currency, b.user_key, b.change,
           CASE WHEN b.paid_by = 'person' THEN b.amount_minor ELSE 0 END AS owed_minor
    FROM closeout_data.expense_bookings b
    ORDER BY b.source, b.source_id, b.version DESC
), recorded AS (
    SELECT a.expense_source AS source, a.expense_source_id AS source_id, a.payee_key, a.currency,
           sum(a.amount_minor)::bigint AS recorded_minor,
           (array_agg(a.adjustment_id ORDER BY a.expense_version DESC, a.created_at DESC))[1] AS last_adjustment_id
    FROM closeout_data.payout_adjustments a
    WHERE a.kind = 'reimbursement'
    GROUP BY a.expense_source, a.expense_source_id, a.payee_key, a.currency
), wanted AS (
    SELECT l.source, l.source_id, l.version, l.change, l.user_key AS payee_key, l.currency, l.owed_minor AS target_minor
    FROM latest l
    UNION ALL  -- a person or currency an earlier version was reimbursed in that the latest version no longer is
    SELECT r.source, r.source_id, l.version, l.change, r.payee_key, r.currency, 0
    FROM recorded r
    JOIN latest l ON l.source = r.source AND l.source_id = r.source_id
    WHERE (l.user_key, l.currency) <> (r.payee_key, r.currency)
), delta AS (
    SELECT w.*, w.target_minor - coalesce(r.recorded_minor, 0) AS delta_minor, r.last_adjustment_id
    FROM wanted w
    LEFT JOIN recorded r ON r.source = w.source AND r.source_id = w.source_id AND r.payee_key = w.payee_key
                        AND r.currency = w.currency
)
INSERT INTO closeout_data.payout_adjustments (adjustment_id, payout_id, payee_key, invoice_id, currency,
    amount_minor, kind, reason, cause_kind, cause_id, cause_amount_minor, invoice_total_minor,
    reverses_adjustment_id, source_ref, description, planned_by, expense_source, expense_source_id, expense_version,
    corrects_adjustment_id)
SELECT 'pa_' || left(encode(sha256(convert_to(d.source || '|' || d.source_id || '|' || d.version || '|' || d.currency
                                              || '|' || d.payee_key || '|reimbursement', 'UTF8')), 'hex'), 24),
       NULL, d.payee_key, NULL, d.currency, d.delta_minor, 'reimbursement', 'reimbursement', 'expense',
       d.source || ':' || d.source_id || ':v' || d.version, d.target_minor, NULL, NULL,
       'expense:' || d.source || ':' || d.source_id || ':v' || d.version,
       CASE WHEN d.last_adjustment_id IS NULL THEN 'Reimbursement of expense '
            ELSE 'Correction (' || d.change || ') of reimbursement ' || d.last_adjustment_id || ' for expense ' END
           || d.source || ':' || d.source_id || ' v' || d.version || ' to ' || d.payee_key || ': '
           || round(d.delta_minor::numeric / (10::numeric ^ cu.exponent), cu.exponent)::text || ' ' || d.currency,
       %(planned_by)s, d.source, d.source_id, d.version, d.last_adjustment_id
FROM delta d
JOIN closeout_data.payout_payees p ON p.payee_key = d.payee_key
JOIN closeout_data.currencies cu ON cu.code = d.currency
WHERE d.delta_minor <> 0
  AND (d.delta_minor < 0 OR (p.active AND p.currency = d.currency))
ORDER BY d.payee_key, d.currency, d.source, d.source_id
ON CONFLICT DO NOTHING
