-- Links the cash objects to each other and to closeout's invoices, set-based, after every sync or event batch.
-- Each statement only touches rows still missing the link, so a rerun finds nothing to do.

-- Stripe's invoice list: which closeout invoice each one is (our publication first, else its metadata claim)
UPDATE closeout_data.stripe_invoice_snapshots s SET invoice_id = i.invoice_id, updated_at = clock_timestamp()
FROM closeout_data.invoices i
WHERE s.invoice_id IS NULL AND i.stripe_invoice_id = s.stripe_invoice_id;
UPDATE closeout_data.stripe_invoice_snapshots s
SET invoice_id = s.metadata ->> 'closeout_invoice_id', updated_at = clock_timestamp()
WHERE s.invoice_id IS NULL AND s.metadata ? 'closeout_invoice_id';

-- charges -> Stripe invoice payments: by the charge itself, else by its PaymentIntent
UPDATE closeout_data.stripe_charges c
SET invoice_payment_id = ip.invoice_payment_id, stripe_invoice_id = ip.stripe_invoice_id, updated_at = clock_timestamp()
FROM closeout_data.stripe_invoice_payments ip
WHERE c.invoice_payment_id IS NULL AND ip.charge_id = c.charge_id AND ip.status <> 'canceled';
UPDATE closeout_data.stripe_charges c
SET invoice_payment_id = ip.invoice_payment_id, stripe_invoice_id = ip.stripe_invoice_id, updated_at = clock_timestamp()
FROM closeout_data.stripe_invoice_payments ip
WHERE c.invoice_payment_id IS NULL AND c.payment_intent_id IS NOT NULL AND ip.payment_intent_id = c.payment_intent_id
  AND ip.status <> 'canceled';

-- charges -> closeout invoices: the Stripe invoice we published, else the payment events recorded, else the
-- metadata claim of Stripe's own invoice
UPDATE closeout_data.stripe_charges c SET invoice_id = i.invoice_id, updated_at = clock_timestamp()
FROM closeout_data.invoices i
WHERE c.invoice_id IS NULL AND c.stripe_invoice_id IS NOT NULL AND i.stripe_invoice_id = c.stripe_invoice_id;
UPDATE closeout_data.stripe_charges c SET invoice_id = p.invoice_id, updated_at = clock_timestamp()
FROM closeout_data.invoice_payments p
WHERE c.invoice_id IS NULL AND p.charge_id = c.charge_id AND p.kind = 'payment';
UPDATE closeout_data.stripe_charges c SET invoice_id = s.invoice_id, updated_at = clock_timestamp()
FROM closeout_data.stripe_invoice_snapshots s
WHERE c.invoice_id IS NULL AND c.stripe_invoice_id IS NOT NULL AND s.stripe_invoice_id = c.stripe_invoice_id
  AND s.invoice_id IS NOT NULL;

-- a charge's amount refunded is what its refunds that have not failed or been canceled add up to (Stripe gives
-- a failed refund's amount back to the charge); charges without recorded refunds keep what Stripe said
UPDATE closeout_data.stripe_charges c SET amount_refunded_minor = r.refunded, updated_at = clock_timestamp()
FROM (SELECT charge_id, coalesce(sum(amount_minor) FILTER (WHERE status NOT IN ('failed', 'canceled')), 0) AS refunded
      FROM closeout_data.refunds GROUP BY charge_id) r
WHERE c.charge_id = r.charge_id AND c.amount_refunded_minor <> r.refunded;

-- refunds and disputes inherit their charge's invoice; a refund a credit note made names that credit note
UPDATE closeout_data.refunds r SET invoice_id = c.invoice_id, updated_at = clock_timestamp()
FROM closeout_data.stripe_charges c
WHERE r.invoice_id IS NULL AND c.charge_id = r.charge_id AND c.invoice_id IS NOT NULL;
UPDATE closeout_data.refunds r SET credit_note_id = n.credit_note_id, updated_at = clock_timestamp()
FROM (SELECT credit_note_id, unnest(refund_ids) AS refund_id FROM closeout_data.credit_notes) n
WHERE r.credit_note_id IS NULL AND n.refund_id = r.refund_id;
UPDATE closeout_data.disputes d SET invoice_id = c.invoice_id, updated_at = clock_timestamp()
FROM closeout_data.stripe_charges c
WHERE d.invoice_id IS NULL AND c.charge_id = d.charge_id AND c.invoice_id IS NOT NULL;

-- credit notes -> closeout invoices
UPDATE closeout_data.credit_notes n SET invoice_id = i.invoice_id, updated_at = clock_timestamp()
FROM closeout_data.invoices i
WHERE n.invoice_id IS NULL AND i.stripe_invoice_id = n.stripe_invoice_id;
UPDATE closeout_data.credit_notes n SET invoice_id = s.invoice_id, updated_at = clock_timestamp()
FROM closeout_data.stripe_invoice_snapshots s
WHERE n.invoice_id IS NULL AND s.stripe_invoice_id = n.stripe_invoice_id AND s.invoice_id IS NOT NULL;

-- balance transactions: the charge (a refund's or dispute's charge), the amount in the presentment currency
-- (signed as the transaction), then the invoice through the charge
UPDATE closeout_data.stripe_balance_transactions t SET charge_id = r.charge_id, updated_at = clock_timestamp()
FROM closeout_data.refunds r
WHERE t.source_type = 'refund' AND t.charge_id IS NULL AND r.refund_id = t.source_id AND r.charge_id IS NOT NULL;
UPDATE closeout_data.stripe_balance_transactions t SET charge_id = d.charge_id, updated_at = clock_timestamp()
FROM closeout_data.disputes d
WHERE t.source_type = 'dispute' AND t.charge_id IS NULL AND d.dispute_id = t.source_id AND d.charge_id IS NOT NULL;
UPDATE closeout_data.stripe_balance_transactions t
SET presentment_currency = c.currency, presentment_amount_minor = sign(t.amount_minor) * c.amount_minor,
    updated_at = clock_timestamp()
FROM closeout_data.stripe_charges c
WHERE t.source_type = 'charge' AND t.presentment_amount_minor IS NULL AND c.charge_id = t.source_id;
UPDATE closeout_data.stripe_balance_transactions t
SET presentment_currency = r.currency, presentment_amount_minor = sign(t.amount_minor) * r.amount_minor,
    updated_at = clock_timestamp()
FROM closeout_data.refunds r
WHERE t.source_type = 'refund' AND t.presentment_amount_minor IS NULL AND r.refund_id = t.source_id;
UPDATE closeout_data.stripe_balance_transactions t
SET presentment_currency = d.currency, presentment_amount_minor = sign(t.amount_minor) * d.amount_minor,
    updated_at = clock_timestamp()
FROM closeout_data.disputes d
WHERE t.source_type = 'dispute' AND t.presentment_amount_minor IS NULL AND d.dispute_id = t.source_id
  AND t.reporting_category IN ('dispute', 'dispute_reversal');
UPDATE closeout_data.stripe_balance_transactions t SET invoice_id = c.invoice_id, updated_at = clock_timestamp()
FROM closeout_data.stripe_charges c
WHERE t.source_type IN ('charge', 'refund', 'dispute') AND t.invoice_id IS NULL AND c.charge_id = t.charge_id
  AND c.invoice_id IS NOT NULL;
