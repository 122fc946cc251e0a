-- An invoice marked uncollectible in Stripe: its unpaid remainder, as the ledger holds it (the receivable
-- lines of the invoice's journals), is written off by the direct method: debit bad_debt, credit receivable.
-- Source = invoice_id:n, n counting the invoice's earlier write-offs (a write-off reversed by a partial
-- payment is followed by write-off n+1 of what is still unpaid). Never posted while one stands.
WITH src AS (
    SELECT i.invoice_id, i.client_key, i.currency, b.remainder,
           (SELECT count(*) FROM closeout_data.journals w
            WHERE w.kind = 'writeoff' AND w.invoice_id = i.invoice_id) AS n,
           coalesce((SELECT max(h.recorded_at) FROM closeout_data.invoice_status_history h
                     WHERE h.invoice_id = i.invoice_id AND h.to_status = 'uncollectible'),
                    clock_timestamp()) AS occurred_at
    FROM closeout_data.invoices i
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(l.debit_minor - l.credit_minor), 0) AS remainder
        FROM closeout_data.journals j
        JOIN closeout_data.journal_lines l ON l.journal_id = j.journal_id AND l.role = 'receivable'
        WHERE j.invoice_id = i.invoice_id
    ) b
    WHERE i.status = 'uncollectible' AND b.remainder > 0
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals w
                      WHERE w.kind = 'writeoff' AND w.invoice_id = i.invoice_id
                        AND NOT EXISTS (SELECT 1 FROM closeout_data.journals r
                                        WHERE r.reverses_journal_id = w.journal_id))
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description)
    SELECT closeout_data.journal_id('writeoff', s.invoice_id || ':' || s.n), 'writeoff', s.invoice_id || ':' || s.n,
           s.currency, s.client_key, s.invoice_id, s.occurred_at, %(run)s,
           'Invoice ' || s.invoice_id || ' uncollectible: unpaid remainder written off'
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, invoice_id, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.invoice_id = p.invoice_id
CROSS JOIN LATERAL (VALUES
    (1, 'bad_debt', %(bad_debt)s, s.remainder, 0::bigint),
    (2, 'receivable', %(receivable)s, 0::bigint, s.remainder)
) AS l (line_no, role, account_code, debit_minor, credit_minor);
