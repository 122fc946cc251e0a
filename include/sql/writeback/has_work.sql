-- Whether the write-back has anything to do or check for one tracker (else its task makes no call at all).
SELECT EXISTS (SELECT 1 FROM closeout_data.tracker_writebacks WHERE source = %(source)s)
    OR EXISTS (SELECT 1 FROM closeout_data.invoices i
               WHERE i.status IN ('open', 'paid') AND i.stripe_invoice_id IS NOT NULL
                 AND (EXISTS (SELECT 1 FROM closeout_data.invoice_line_entries e
                              WHERE e.invoice_id = i.invoice_id AND e.valid_to IS NULL AND e.source = %(source)s)
                      OR EXISTS (SELECT 1 FROM closeout.invoice_line_expenses x
                                 WHERE x.invoice_id = i.invoice_id AND x.source = %(source)s)))
