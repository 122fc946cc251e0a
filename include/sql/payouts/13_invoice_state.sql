-- Per invoice with a cause (payout_causes): its total, what refunds, credit notes and lost disputes took back
-- (capped at the total), whether an open dispute holds it, and the causes in words for the exceptions.
-- Fills the temporary table payout_invoice_state (created by the caller) for this transaction.
INSERT INTO payout_invoice_state (invoice_id, total_minor, reduced_minor, held, detail)
SELECT c.invoice_id, i.total_minor,
       least(coalesce(sum(c.amount_minor) FILTER (WHERE c.effect = 'reduces'), 0), greatest(i.total_minor, 0)),
       coalesce(bool_or(c.effect = 'holds'), false),
       string_agg(replace(c.cause_kind, '_', ' ') || ' ' || c.cause_id || ' (' || c.status || ', '
                      || round(c.amount_minor::numeric / (10::numeric ^ cu.exponent), cu.exponent)::text || ' '
                      || i.currency || ')', '; ' ORDER BY c.created_at, c.cause_kind, c.cause_id)
FROM payout_causes c
JOIN closeout_data.invoices i ON i.invoice_id = c.invoice_id
JOIN closeout_data.currencies cu ON cu.code = i.currency
GROUP BY c.invoice_id, i.total_minor
