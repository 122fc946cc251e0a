-- A written-off invoice that is paid after all (a payment not yet posted), or voided, first has its standing
-- write-off reversed: a new journal mirroring the write-off's lines (debit and credit swapped), linked by
-- reverses_journal_id. The payment then settles the receivable the reversal restored; if the invoice is still
-- uncollectible afterwards, the write-off step writes the new remainder off again (write-off n+1).
WITH src AS (
    SELECT w.journal_id AS original, w.currency, w.client_key, w.invoice_id,
           coalesce((SELECT min(x.occurred_at) FROM closeout_data.invoice_payments x
                     WHERE x.invoice_id = w.invoice_id AND x.kind = 'payment' AND x.amount_minor > 0
                       AND NOT EXISTS (SELECT 1 FROM closeout_data.journals pj
                                       WHERE pj.kind = 'payment' AND pj.source_ref = x.payment_ref)),
                    (SELECT max(h.recorded_at) FROM closeout_data.invoice_status_history h
                     WHERE h.invoice_id = w.invoice_id AND h.to_status = i.status),
                    clock_timestamp()) AS occurred_at,
           i.status
    FROM closeout_data.journals w
    JOIN closeout_data.invoices i ON i.invoice_id = w.invoice_id
    WHERE w.kind = 'writeoff'
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals r WHERE r.reverses_journal_id = w.journal_id)
      AND (i.status <> 'uncollectible'
           OR EXISTS (SELECT 1 FROM closeout_data.invoice_payments x
                      WHERE x.invoice_id = w.invoice_id AND x.kind = 'payment' AND x.amount_minor > 0
                        AND NOT EXISTS (SELECT 1 FROM closeout_data.journals pj
                                        WHERE pj.kind = 'payment' AND pj.source_ref = x.payment_ref)))
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        reverses_journal_id, ledger_run_id, description)
    SELECT closeout_data.journal_id('writeoff_reversal', s.original), 'writeoff_reversal', s.original, s.currency,
           s.client_key, s.invoice_id, s.occurred_at, s.original, %(run)s,
           'Write-off ' || s.original || ' of invoice ' || s.invoice_id || ' reversed: invoice '
               || CASE WHEN s.status = 'uncollectible' THEN 'paid in part' ELSE s.status END
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, reverses_journal_id
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, o.line_no, o.currency, o.role, o.account_code, o.credit_minor, o.debit_minor
FROM posted p
JOIN closeout_data.journal_lines o ON o.journal_id = p.reverses_journal_id;
