-- A credit note is issued, then possibly void; amounts never change once issued.
INSERT INTO closeout_data.credit_notes AS t (
    credit_note_id, stripe_invoice_id, customer_id, number, currency, amount_minor, pre_payment_amount_minor,
    post_payment_amount_minor, refund_amount_minor, credit_amount_minor, out_of_band_amount_minor, refund_ids, type,
    status, reason, memo, metadata, created_at, voided_at, observed_at, tax_minor)
SELECT DISTINCT ON (s.credit_note_id)
       s.credit_note_id, s.stripe_invoice_id, s.customer_id, s.number, s.currency, s.amount_minor,
       s.pre_payment_amount_minor, s.post_payment_amount_minor, s.refund_amount_minor, s.credit_amount_minor,
       s.out_of_band_amount_minor, coalesce(s.refund_ids, '{}'), s.type, s.status, s.reason, s.memo, s.metadata,
       to_timestamp(s.created), to_timestamp(s.voided_at), s.observed_at, s.tax_minor
FROM pg_temp.cash_stage_credit_note s
ORDER BY s.credit_note_id, closeout_data.stripe_status_rank('credit_note', s.status) DESC, s.observed_at DESC
ON CONFLICT (credit_note_id) DO UPDATE SET
    refund_ids = CASE WHEN cardinality(excluded.refund_ids) >= cardinality(t.refund_ids) THEN excluded.refund_ids
                      ELSE t.refund_ids END,
    refund_amount_minor = excluded.refund_amount_minor,
    credit_amount_minor = excluded.credit_amount_minor,
    status = excluded.status,
    memo = excluded.memo,
    metadata = excluded.metadata,
    voided_at = coalesce(excluded.voided_at, t.voided_at),
    tax_minor = coalesce(t.tax_minor, excluded.tax_minor),
    observed_at = excluded.observed_at,
    updated_at = clock_timestamp()
WHERE (closeout_data.stripe_status_rank('credit_note', excluded.status), excluded.observed_at)
      > (closeout_data.stripe_status_rank('credit_note', t.status), t.observed_at)
  AND (excluded.status, excluded.refund_ids, excluded.refund_amount_minor, excluded.memo, excluded.metadata,
       excluded.voided_at)
      IS DISTINCT FROM (t.status, t.refund_ids, t.refund_amount_minor, t.memo, t.metadata, t.voided_at)
