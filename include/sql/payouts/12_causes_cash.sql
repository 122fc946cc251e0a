-- Why an invoice's work may not be payable, on the current state of the cash tables (migration 0016), with the
-- event-fed payment history (closeout_data.invoice_payments) as the fallback for what the cash sync has not
-- recorded yet. Fills the temporary table payout_causes (created by the caller) for this transaction.
--   refunds       pending, succeeded or requires_action: the money is going back (reduces). Failed and
--                 canceled refunds return nothing. A refund made by an issued credit note is counted through
--                 the credit note (its amount includes the refund), not twice.
--   credit notes  issued: reduces by the whole amount credited (before or after payment, refunded, credited to
--                 the customer balance or out of band: the customer does not pay for it). Void: nothing.
--   disputes      lost: reduces by the disputed amount; won or an inquiry closed without a charge-back: nothing;
--                 any other status (needs_response, under_review, ...): the dispute is open and holds the
--                 invoice's work until it ends.
--   events        a refund step on a charge the refunds table knows nothing about yet reduces; a dispute the
--                 disputes table does not know yet holds.
INSERT INTO payout_causes (invoice_id, cause_kind, cause_id, amount_minor, created_at, effect, status)
SELECT coalesce(r.invoice_id, ch.invoice_id), 'refund', r.refund_id, r.amount_minor, r.created_at, 'reduces',
       r.status
FROM closeout_data.refunds r
LEFT JOIN closeout_data.stripe_charges ch ON ch.charge_id = r.charge_id
WHERE r.status IN ('pending', 'succeeded', 'requires_action') AND r.amount_minor > 0
  AND coalesce(r.invoice_id, ch.invoice_id) IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM closeout_data.credit_notes cn
                  WHERE cn.credit_note_id = r.credit_note_id AND cn.status = 'issued')
UNION ALL
SELECT cn.invoice_id, 'credit_note', cn.credit_note_id, cn.amount_minor, cn.created_at, 'reduces', cn.status
FROM closeout_data.credit_notes cn
WHERE cn.status = 'issued' AND cn.invoice_id IS NOT NULL AND cn.amount_minor > 0
UNION ALL
SELECT coalesce(d.invoice_id, ch.invoice_id), 'dispute', d.dispute_id, d.amount_minor, d.created_at,
       CASE WHEN d.status = 'lost' THEN 'reduces' ELSE 'holds' END, d.status
FROM closeout_data.disputes d
LEFT JOIN closeout_data.stripe_charges ch ON ch.charge_id = d.charge_id
WHERE d.status NOT IN ('won', 'warning_closed') AND d.amount_minor > 0
  AND coalesce(d.invoice_id, ch.invoice_id) IS NOT NULL
UNION ALL
SELECT p.invoice_id, 'refund', p.payment_ref, p.amount_minor, p.occurred_at, 'reduces', 'succeeded'
FROM closeout_data.invoice_payments p
WHERE p.kind = 'refund' AND p.amount_minor > 0
  AND NOT EXISTS (SELECT 1 FROM closeout_data.refunds r WHERE r.charge_id = p.charge_id)
UNION ALL
SELECT p.invoice_id, 'dispute', p.payment_ref, p.amount_minor, p.occurred_at, 'holds', 'open'
FROM closeout_data.invoice_payments p
WHERE p.kind = 'dispute' AND p.amount_minor > 0
  AND NOT EXISTS (SELECT 1 FROM closeout_data.disputes d WHERE d.dispute_id = p.payment_ref)
