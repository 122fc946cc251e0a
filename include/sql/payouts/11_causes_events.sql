-- Why an invoice's work may not be payable, when the cash tables of migration 0016 (closeout_data.refunds,
-- credit_notes, disputes) are not installed: only what closeout.payments.events recorded in
-- closeout_data.invoice_payments. A refund step (kind 'refund', one row per charge.refunded, id
-- 'refund:<charge>:<amount refunded so far>') reduces what the invoice brought in; a dispute (kind 'dispute', id =
-- the dispute id) holds the invoice's work: the event stream says nothing about how it ends.
-- Fills the temporary table payout_causes (created by the caller) for this transaction.
INSERT INTO payout_causes (invoice_id, cause_kind, cause_id, amount_minor, created_at, effect, status)
SELECT p.invoice_id, p.kind, p.payment_ref, p.amount_minor, p.occurred_at,
       CASE p.kind WHEN 'refund' THEN 'reduces' ELSE 'holds' END,
       CASE p.kind WHEN 'refund' THEN 'succeeded' ELSE 'open' END
FROM closeout_data.invoice_payments p
WHERE p.kind IN ('refund', 'dispute') AND p.amount_minor > 0
