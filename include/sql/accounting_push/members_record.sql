-- Which ledger journals each pushed group journal carries (fees per day and currency), recorded with its link in one
-- transaction; a journal part is carried by one group at most (the primary key), so a second record is a no-op.
INSERT INTO closeout_data.accounting_push_members (system, company_id, object_kind, closeout_ref, journal_id, currency,
                                                   amount_minor)
SELECT %(system)s, %(company_id)s, object_kind, closeout_ref, journal_id, currency, amount_minor
FROM jsonb_to_recordset(%(members)s::jsonb)
    AS t(object_kind text, closeout_ref text, journal_id text, currency text, amount_minor bigint)
ON CONFLICT DO NOTHING
