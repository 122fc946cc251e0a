-- A clawback whose cause no longer takes money back (a refund that failed or was canceled, a credit note
-- voided, a refund step the refunds table now records under the refund's own id) is reversed: a positive
-- adjustment of the same amount, recorded once (one reversal per clawback: reverses_adjustment_id is unique and
-- the id follows from item, cause and kind). The clawback itself is never edited.
INSERT INTO closeout_data.payout_adjustments (adjustment_id, payout_id, payee_key, invoice_id, currency,
    amount_minor, kind, reason, cause_kind, cause_id, cause_amount_minor, invoice_total_minor,
    reverses_adjustment_id, source_ref, description, planned_by)
SELECT 'pa_' || left(encode(sha256(convert_to(a.payout_id || '|' || a.cause_kind || '|' || a.cause_id || '|reversal',
                                              'UTF8')), 'hex'), 24),
       a.payout_id, a.payee_key, a.invoice_id, a.currency, -a.amount_minor, 'reversal',
       CASE a.cause_kind WHEN 'refund' THEN 'refund_reversed' WHEN 'credit_note' THEN 'credit_note_voided'
                         ELSE 'dispute_reversed' END,
       a.cause_kind, a.cause_id, a.cause_amount_minor, a.invoice_total_minor, a.adjustment_id, a.source_ref,
       'Reverses clawback ' || a.adjustment_id || ' of '
           || round(-a.amount_minor::numeric / (10::numeric ^ cu.exponent), cu.exponent)::text || ' ' || a.currency
           || ' from ' || a.payee_key || ': ' || replace(a.cause_kind, '_', ' ') || ' ' || a.cause_id
           || ' no longer takes money back from invoice ' || a.invoice_id
           || ' (failed, canceled, voided or recorded under another id)',
       %(planned_by)s
FROM closeout_data.payout_adjustments a
JOIN closeout_data.currencies cu ON cu.code = a.currency
WHERE a.kind = 'clawback'
  AND NOT EXISTS (SELECT 1 FROM closeout_data.payout_adjustments r WHERE r.reverses_adjustment_id = a.adjustment_id)
  AND NOT EXISTS (SELECT 1 FROM payout_causes c
                  WHERE c.invoice_id = a.invoice_id AND c.cause_kind = a.cause_kind AND c.cause_id = a.cause_id
                    AND c.effect = 'reduces')
ORDER BY a.created_at, a.adjustment_id
ON CONFLICT DO NOTHING
