-- The objects the accounting system now holds (an invoice with its tax), one link each (both unique keys make a
-- second link a no-op: an object is linked once), and their exceptions resolved: they went.
WITH x AS (
    SELECT * FROM jsonb_to_recordset(%(links)s::jsonb)
        AS t(object_kind text, closeout_ref text, external_id text, remote_version text, matched_by text,
             total_minor bigint, currency text)
), ins AS (
    INSERT INTO closeout_data.accounting_links (system, company_id, object_kind, closeout_ref, external_id,
                                                remote_version, matched_by, total_minor, currency, synced_at,
                                                tax_minor)
    SELECT %(system)s, %(company_id)s, object_kind, closeout_ref, external_id, remote_version, matched_by,
           total_minor, currency, clock_timestamp(),
           -- an invoice's tax as closeout pushed it (0042): the accounting_links check compares it with theirs
           coalesce((SELECT i.tax_minor FROM closeout.invoices i
                     WHERE x.object_kind = 'invoice' AND i.invoice_id = x.closeout_ref),
                    -- a credit note's tax as pushed (its journal's tax_payable debit; 0 untaxed): compared as well
                    CASE WHEN x.object_kind = 'credit_note' THEN
                        (SELECT coalesce(sum(l.debit_minor), 0) FROM closeout_data.journals j
                         JOIN closeout_data.journal_lines l ON l.journal_id = j.journal_id AND l.role = 'tax_payable'
                         WHERE j.kind = 'credit_note' AND j.source_ref = x.closeout_ref) END)
    FROM x
    ON CONFLICT DO NOTHING
    RETURNING object_kind, closeout_ref
), resolved AS (
    UPDATE closeout_data.accounting_push_exceptions e
       SET resolved_at = clock_timestamp()
      FROM x
     WHERE e.system = %(system)s AND e.company_id = %(company_id)s AND e.object_kind = x.object_kind
       AND e.closeout_ref = x.closeout_ref AND e.resolved_at IS NULL
    RETURNING e.exception_id
)
SELECT count(*) FROM ins
