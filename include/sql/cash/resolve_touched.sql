-- The links of resolve.sql, for the rows this run wrote (pg_temp.cash_touched_*) and the rows that point at
-- them: each statement is driven by a few keys through the primary keys and indexes, so a run costs what it
-- wrote, not the size of the tables. resolve.sql (every row still missing a link) runs periodically and at
-- the close, and catches what a killed run left unlinked or what our own invoices learnt later.

UPDATE closeout_data.stripe_invoice_snapshots s
SET invoice_id = coalesce(i.invoice_id, s.metadata ->> 'closeout_invoice_id'), updated_at = clock_timestamp()
FROM pg_temp.cash_touched_invoice k LEFT JOIN closeout_data.invoices i ON i.stripe_invoice_id = k.id
WHERE s.stripe_invoice_id = k.id AND s.invoice_id IS NULL
  AND coalesce(i.invoice_id, s.metadata ->> 'closeout_invoice_id') IS NOT NULL;

-- charges -> Stripe invoice payments (touched charges; charges of touched invoice payments)
UPDATE closeout_data.stripe_charges c
SET invoice_payment_id = ip.invoice_payment_id, stripe_invoice_id = ip.stripe_invoice_id, updated_at = clock_timestamp()
FROM pg_temp.cash_touched_charge k, closeout_data.stripe_invoice_payments ip
WHERE c.charge_id = k.id AND c.invoice_payment_id IS NULL AND ip.status <> 'canceled' AND ip.charge_id = c.charge_id;
UPDATE closeout_data.stripe_charges c
SET invoice_payment_id = ip.invoice_payment_id, stripe_invoice_id = ip.stripe_invoice_id, updated_at = clock_timestamp()
FROM pg_temp.cash_touched_charge k, closeout_data.stripe_invoice_payments ip
WHERE c.charge_id = k.id AND c.invoice_payment_id IS NULL AND ip.status <> 'canceled'
  AND ip.payment_intent_id = c.payment_intent_id;
UPDATE closeout_data.stripe_charges c
SET invoice_payment_id = ip.invoice_payment_id, stripe_invoice_id = ip.stripe_invoice_id, updated_at = clock_timestamp()
FROM pg_temp.cash_touched_invoice_payment k JOIN closeout_data.stripe_invoice_payments ip ON ip.invoice_payment_id = k.id
WHERE ip.charge_id = c.charge_id AND c.invoice_payment_id IS NULL AND ip.status <> 'canceled';
UPDATE closeout_data.stripe_charges c
SET invoice_payment_id = ip.invoice_payment_id, stripe_invoice_id = ip.stripe_invoice_id, updated_at = clock_timestamp()
FROM pg_temp.cash_touched_invoice_payment k JOIN closeout_data.stripe_invoice_payments ip ON ip.invoice_payment_id = k.id
WHERE ip.payment_intent_id = c.payment_intent_id AND c.invoice_payment_id IS NULL AND ip.status <> 'canceled';

-- charges -> closeout invoices: every charge still unlinked whose Stripe invoice or payment is known now, among
-- the touched charges and the charges of touched invoice payments and Stripe invoices
CREATE TEMP TABLE IF NOT EXISTS cash_link_charges (id text);
TRUNCATE pg_temp.cash_link_charges;
INSERT INTO pg_temp.cash_link_charges
SELECT id FROM pg_temp.cash_touched_charge
UNION SELECT c.charge_id FROM pg_temp.cash_touched_invoice_payment k
      JOIN closeout_data.stripe_invoice_payments ip ON ip.invoice_payment_id = k.id
      JOIN closeout_data.stripe_charges c ON c.invoice_payment_id = ip.invoice_payment_id
UNION SELECT c.charge_id FROM pg_temp.cash_touched_invoice k
      JOIN closeout_data.stripe_invoice_payments ip ON ip.stripe_invoice_id = k.id
      JOIN closeout_data.stripe_charges c ON c.invoice_payment_id = ip.invoice_payment_id;
ANALYZE pg_temp.cash_link_charges;
UPDATE closeout_data.stripe_charges c
SET invoice_id = coalesce(i.invoice_id, p.invoice_id, s.invoice_id), updated_at = clock_timestamp()
FROM pg_temp.cash_link_charges k
JOIN closeout_data.stripe_charges x ON x.charge_id = k.id
LEFT JOIN closeout_data.invoices i ON i.stripe_invoice_id = x.stripe_invoice_id
LEFT JOIN LATERAL (SELECT p.invoice_id FROM closeout_data.invoice_payments p
                   WHERE p.charge_id = x.charge_id AND p.kind = 'payment' LIMIT 1) p ON true
LEFT JOIN closeout_data.stripe_invoice_snapshots s ON s.stripe_invoice_id = x.stripe_invoice_id
WHERE c.charge_id = x.charge_id AND c.invoice_id IS NULL
  AND coalesce(i.invoice_id, p.invoice_id, s.invoice_id) IS NOT NULL;

-- the amount refunded of touched charges (a snapshot may carry an amount a failed refund gave back) and of the
-- charges of touched refunds
UPDATE closeout_data.stripe_charges c SET amount_refunded_minor = r.refunded, updated_at = clock_timestamp()
FROM (SELECT r.charge_id,
             coalesce(sum(r.amount_minor) FILTER (WHERE r.status NOT IN ('failed', 'canceled')), 0) AS refunded
      FROM closeout_data.refunds r
      WHERE r.charge_id IN (SELECT x.charge_id FROM pg_temp.cash_touched_refund k
                            JOIN closeout_data.refunds x ON x.refund_id = k.id
                            UNION SELECT id FROM pg_temp.cash_touched_charge)
      GROUP BY r.charge_id) r
WHERE c.charge_id = r.charge_id AND c.amount_refunded_minor <> r.refunded;

-- refunds and disputes: touched ones, and those of linked charges
UPDATE closeout_data.refunds r SET invoice_id = c.invoice_id, updated_at = clock_timestamp()
FROM pg_temp.cash_touched_refund k, closeout_data.stripe_charges c
WHERE r.refund_id = k.id AND r.invoice_id IS NULL AND c.charge_id = r.charge_id AND c.invoice_id IS NOT NULL;
UPDATE closeout_data.refunds r SET invoice_id = c.invoice_id, updated_at = clock_timestamp()
FROM pg_temp.cash_link_charges k, closeout_data.stripe_charges c
WHERE c.charge_id = k.id AND r.charge_id = c.charge_id AND r.invoice_id IS NULL AND c.invoice_id IS NOT NULL;
UPDATE closeout_data.refunds r SET credit_note_id = n.credit_note_id, updated_at = clock_timestamp()
FROM (SELECT x.credit_note_id, unnest(x.refund_ids) AS refund_id FROM pg_temp.cash_touched_credit_note k
      JOIN closeout_data.credit_notes x ON x.credit_note_id = k.id) n
WHERE r.refund_id = n.refund_id AND r.credit_note_id IS NULL;
UPDATE closeout_data.refunds r SET credit_note_id = n.credit_note_id, updated_at = clock_timestamp()
FROM pg_temp.cash_touched_refund k, closeout_data.credit_notes n
WHERE r.refund_id = k.id AND r.credit_note_id IS NULL AND k.id = ANY(n.refund_ids);
UPDATE closeout_data.disputes d SET invoice_id = c.invoice_id, updated_at = clock_timestamp()
FROM pg_temp.cash_touched_dispute k, closeout_data.stripe_charges c
WHERE d.dispute_id = k.id AND d.invoice_id IS NULL AND c.charge_id = d.charge_id AND c.invoice_id IS NOT NULL;
UPDATE closeout_data.disputes d SET invoice_id = c.invoice_id, updated_at = clock_timestamp()
FROM pg_temp.cash_link_charges k, closeout_data.stripe_charges c
WHERE c.charge_id = k.id AND d.charge_id = c.charge_id AND d.invoice_id IS NULL AND c.invoice_id IS NOT NULL;

-- credit notes (touched) -> closeout invoices
UPDATE closeout_data.credit_notes n SET invoice_id = coalesce(i.invoice_id, s.invoice_id), updated_at = clock_timestamp()
FROM pg_temp.cash_touched_credit_note k
JOIN closeout_data.credit_notes x ON x.credit_note_id = k.id
LEFT JOIN closeout_data.invoices i ON i.stripe_invoice_id = x.stripe_invoice_id
LEFT JOIN closeout_data.stripe_invoice_snapshots s ON s.stripe_invoice_id = x.stripe_invoice_id
WHERE n.credit_note_id = x.credit_note_id AND n.invoice_id IS NULL AND coalesce(i.invoice_id, s.invoice_id) IS NOT NULL;

-- balance transactions to look at: the touched ones, and those of touched refunds, disputes and linked charges
CREATE TEMP TABLE IF NOT EXISTS cash_link_txns (id text);
TRUNCATE pg_temp.cash_link_txns;
INSERT INTO pg_temp.cash_link_txns
SELECT id FROM pg_temp.cash_touched_balance_transaction
UNION SELECT t.balance_transaction_id FROM pg_temp.cash_touched_refund k
      JOIN closeout_data.stripe_balance_transactions t ON t.source_id = k.id
UNION SELECT t.balance_transaction_id FROM pg_temp.cash_touched_dispute k
      JOIN closeout_data.stripe_balance_transactions t ON t.source_id = k.id
UNION SELECT t.balance_transaction_id FROM pg_temp.cash_link_charges k
      JOIN closeout_data.stripe_balance_transactions t ON t.source_id = k.id
UNION SELECT t.balance_transaction_id FROM pg_temp.cash_link_charges k
      JOIN closeout_data.stripe_balance_transactions t ON t.charge_id = k.id;
ANALYZE pg_temp.cash_link_txns;
UPDATE closeout_data.stripe_balance_transactions t SET charge_id = r.charge_id, updated_at = clock_timestamp()
FROM pg_temp.cash_link_txns k, closeout_data.refunds r
WHERE t.balance_transaction_id = k.id AND t.source_type = 'refund' AND t.charge_id IS NULL AND r.refund_id = t.source_id
  AND r.charge_id IS NOT NULL;
UPDATE closeout_data.stripe_balance_transactions t SET charge_id = d.charge_id, updated_at = clock_timestamp()
FROM pg_temp.cash_link_txns k, closeout_data.disputes d
WHERE t.balance_transaction_id = k.id AND t.source_type = 'dispute' AND t.charge_id IS NULL
  AND d.dispute_id = t.source_id AND d.charge_id IS NOT NULL;
UPDATE closeout_data.stripe_balance_transactions t
SET presentment_currency = c.currency, presentment_amount_minor = sign(t.amount_minor) * c.amount_minor,
    updated_at = clock_timestamp()
FROM pg_temp.cash_link_txns k, closeout_data.stripe_charges c
WHERE t.balance_transaction_id = k.id AND t.source_type = 'charge' AND t.presentment_amount_minor IS NULL
  AND c.charge_id = t.source_id;
UPDATE closeout_data.stripe_balance_transactions t
SET presentment_currency = r.currency, presentment_amount_minor = sign(t.amount_minor) * r.amount_minor,
    updated_at = clock_timestamp()
FROM pg_temp.cash_link_txns k, closeout_data.refunds r
WHERE t.balance_transaction_id = k.id AND t.source_type = 'refund' AND t.presentment_amount_minor IS NULL
  AND r.refund_id = t.source_id;
UPDATE closeout_data.stripe_balance_transactions t
SET presentment_currency = d.currency, presentment_amount_minor = sign(t.amount_minor) * d.amount_minor,
    updated_at = clock_timestamp()
FROM pg_temp.cash_link_txns k, closeout_data.disputes d
WHERE t.balance_transaction_id = k.id AND t.source_type = 'dispute' AND t.presentment_amount_minor IS NULL
  AND d.dispute_id = t.source_id AND t.reporting_category IN ('dispute', 'dispute_reversal');
UPDATE closeout_data.stripe_balance_transactions t SET invoice_id = c.invoice_id, updated_at = clock_timestamp()
FROM pg_temp.cash_link_txns k, closeout_data.stripe_charges c
WHERE t.balance_transaction_id = k.id AND t.source_type IN ('charge', 'refund', 'dispute') AND t.invoice_id IS NULL
  AND c.charge_id = t.charge_id AND c.invoice_id IS NOT NULL;
