-- Refunds and disputes (closeout_data.invoice_payments kinds 'refund' and 'dispute'). Neither changes the
-- invoice in Stripe (it stays paid), so neither touches the receivable: money left the Stripe balance against
-- a contra-revenue account, which keeps gross revenue as invoiced and shows what was given back.
--   refund:  debit refunds, credit cash_clearing, for the amount refunded in that step;
--   dispute: debit disputes (chargebacks), credit cash_clearing, for the disputed amount Stripe withdrew when
--            the dispute opened. A dispute later won returns the funds: that outcome is not recorded in
--            closeout today; when it is, its journal reverses this one (reverses_journal_id).
WITH src AS (
    SELECT x.payment_ref, x.kind, x.invoice_id, x.amount_minor, x.currency, x.occurred_at, x.charge_id, i.client_key
    FROM closeout_data.invoice_payments x
    JOIN closeout_data.invoices i ON i.invoice_id = x.invoice_id
    WHERE x.kind IN ('refund', 'dispute') AND x.amount_minor > 0
      AND EXISTS (SELECT 1 FROM closeout_data.journals f WHERE f.kind = 'invoice' AND f.source_ref = x.invoice_id)
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j WHERE j.kind = x.kind AND j.source_ref = x.payment_ref)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description)
    SELECT closeout_data.journal_id(s.kind, s.payment_ref), s.kind, s.payment_ref, s.currency, s.client_key,
           s.invoice_id, s.occurred_at, %(run)s,
           initcap(s.kind) || ' ' || s.payment_ref || ' on charge ' || coalesce(s.charge_id, '?') || ' of invoice '
               || s.invoice_id
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, kind, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.kind = p.kind AND s.payment_ref = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, CASE s.kind WHEN 'refund' THEN 'refunds' ELSE 'disputes' END,
        CASE s.kind WHEN 'refund' THEN %(refunds)s ELSE %(disputes)s END, s.amount_minor, 0::bigint),
    (2, 'cash_clearing', %(cash_clearing)s, 0::bigint, s.amount_minor)
) AS l (line_no, role, account_code, debit_minor, credit_minor);
