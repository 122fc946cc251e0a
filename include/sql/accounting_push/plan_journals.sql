-- The remaining journals (refunds, disputes, credit notes that are not documents, FX, write-offs, contractor
-- payouts, ...) not yet in the accounting system: every ledger journal except the kinds the invoice and payment
-- documents already book there (%(document_kinds)s) and the journals a credit note or deposit document books
-- (closeout_data.accounting_document_journals). A journal spanning currencies goes as one entry per currency (each
-- balances on its own, invariant 4), ref '<journal_id>:<currency>'; a single-currency journal's ref is its id.
-- Lines carry their role, ledger account and client (receivable lines name the customer).
--
-- Stripe fees (kind 'fee', one ledger journal per balance transaction: 10,000 a month for 10,000 payments) go as ONE
-- journal per day and currency, ref 'fees:<date>:<currency>', its lines the day's fee journals summed per account
-- and side, with its members (which ledger journals it carries: recorded in closeout_data.accounting_push_members
-- with its link). A fee journal booked after its day's group was pushed (or sent) goes in a new group of that day,
-- 'fees:<date>:<currency>:<n>' (n = groups already there or on their way + 1), never into the pushed one.
WITH parts AS (
    SELECT l.journal_id, l.currency,
           count(*) OVER (PARTITION BY l.journal_id) AS part_count
    FROM (SELECT DISTINCT jl.journal_id, jl.currency FROM closeout_data.journal_lines jl) l
), refs AS (
    SELECT p.journal_id, p.currency,
           CASE WHEN p.part_count = 1 THEN p.journal_id ELSE p.journal_id || ':' || p.currency END AS ref
    FROM parts p
), singles AS (
    SELECT r.ref, j.client_key, r.currency, j.kind,
           (SELECT sum(l.debit_minor) FROM closeout_data.journal_lines l
             WHERE l.journal_id = r.journal_id AND l.currency = r.currency) AS total_minor,
           (j.occurred_at AT TIME ZONE 'UTC')::date AS txn_date, j.description, j.source_ref,
           (SELECT bt.exchange_rate FROM closeout_data.stripe_balance_transactions bt
             WHERE upper(bt.presentment_currency) = r.currency AND upper(bt.currency) = %(home)s
               AND bt.exchange_rate IS NOT NULL
               AND (bt.charge_id = j.charge_id OR bt.created_at <= j.occurred_at)
             ORDER BY bt.charge_id IS NOT DISTINCT FROM j.charge_id DESC, bt.created_at DESC LIMIT 1) AS ledger_rate,
           (SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'account', l.account_code, 'role', l.role,
                                                'debit_minor', l.debit_minor, 'credit_minor', l.credit_minor)
                             ORDER BY l.line_no)
              FROM closeout_data.journal_lines l
             WHERE l.journal_id = r.journal_id AND l.currency = r.currency) AS lines,
           NULL::jsonb AS members
    FROM refs r
    JOIN closeout_data.journals j ON j.journal_id = r.journal_id
    WHERE j.kind <> ALL(%(document_kinds)s::text[])
      AND j.kind <> 'fee'
      AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_document_journals d
                      WHERE d.journal_id = r.journal_id AND d.currency = r.currency)
), fee_parts AS (
    -- fee journals no pushed group carries and no batch waiting for its answer is sending
    SELECT r.journal_id, r.currency, (j.occurred_at AT TIME ZONE 'UTC')::date AS day,
           (SELECT sum(l.debit_minor) FROM closeout_data.journal_lines l
             WHERE l.journal_id = r.journal_id AND l.currency = r.currency) AS amount_minor
    FROM refs r
    JOIN closeout_data.journals j ON j.journal_id = r.journal_id
    WHERE j.kind = 'fee'
      -- pushed on its own before fees were grouped: it is there already
      AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_links k
                      WHERE k.system = %(system)s AND k.company_id = %(company_id)s AND k.object_kind = 'journal'
                        AND k.closeout_ref = r.ref)
      AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_push_members m
                      WHERE m.system = %(system)s AND m.company_id = %(company_id)s
                        AND m.journal_id = r.journal_id AND m.currency = r.currency)
      AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_push_batches b
                      WHERE b.system = %(system)s AND b.company_id = %(company_id)s AND b.state = 'pending'
                        AND b.object_kind = 'journal'
                        AND b.items @> jsonb_build_array(jsonb_build_object('members', jsonb_build_array(
                                jsonb_build_object('journal_id', r.journal_id, 'currency', r.currency)))))
), fee_days AS (
    SELECT f.day, f.currency, 'fees:' || f.day || ':' || f.currency AS base,
           count(*) AS member_count, sum(f.amount_minor) AS amount_minor,
           jsonb_agg(jsonb_build_object('journal_id', f.journal_id, 'currency', f.currency,
                                        'amount_minor', f.amount_minor) ORDER BY f.journal_id) AS members
    FROM fee_parts f
    GROUP BY f.day, f.currency
), fee_groups AS (
    SELECT d.*,
           (SELECT count(DISTINCT g.ref) FROM (
                SELECT k.closeout_ref AS ref FROM closeout_data.accounting_links k
                 WHERE k.system = %(system)s AND k.company_id = %(company_id)s AND k.object_kind = 'journal'
                   AND (k.closeout_ref = d.base OR k.closeout_ref LIKE d.base || ':%%')
                UNION ALL
                SELECT i ->> 'ref' FROM closeout_data.accounting_push_batches b
                CROSS JOIN LATERAL jsonb_array_elements(b.items) i
                 WHERE b.system = %(system)s AND b.company_id = %(company_id)s AND b.state = 'pending'
                   AND b.object_kind = 'journal'
                   AND (i ->> 'ref' = d.base OR i ->> 'ref' LIKE d.base || ':%%')) g) AS earlier
    FROM fee_days d
), grouped AS (
    SELECT CASE WHEN g.earlier = 0 THEN g.base ELSE g.base || ':' || (g.earlier + 1) END AS ref,
           NULL::text AS client_key, g.currency, 'fee'::text AS kind, g.amount_minor AS total_minor,
           g.day AS txn_date,
           'Stripe fees of ' || g.day || ' in ' || g.currency || ' (' || g.member_count || ' ledger journals)'
               AS description,
           g.base AS source_ref,
           (SELECT bt.exchange_rate FROM closeout_data.stripe_balance_transactions bt
             WHERE upper(bt.presentment_currency) = g.currency AND upper(bt.currency) = %(home)s
               AND bt.exchange_rate IS NOT NULL AND bt.created_at < (g.day + 1)::timestamp AT TIME ZONE 'UTC'
             ORDER BY bt.created_at DESC LIMIT 1) AS ledger_rate,
           (SELECT jsonb_agg(jsonb_build_object('line_no', s.line_no, 'account', s.account_code, 'role', s.role,
                                                'debit_minor', s.debit_minor, 'credit_minor', s.credit_minor)
                             ORDER BY s.line_no)
              FROM (SELECT row_number() OVER (ORDER BY sum(l.credit_minor) > 0, l.role, l.account_code) AS line_no,
                           l.role, l.account_code, sum(l.debit_minor) AS debit_minor,
                           sum(l.credit_minor) AS credit_minor
                      FROM jsonb_to_recordset(g.members) AS m(journal_id text, currency text)
                      JOIN closeout_data.journal_lines l ON l.journal_id = m.journal_id AND l.currency = m.currency
                     GROUP BY l.role, l.account_code, l.debit_minor > 0) s) AS lines,
           g.members
    FROM fee_groups g
), planned AS (
    SELECT * FROM singles
    UNION ALL
    SELECT * FROM grouped
)
SELECT p.ref, p.client_key, p.currency, p.kind, p.total_minor, p.txn_date, cur.exponent, home.exponent AS home_exponent,
       p.description, p.source_ref, cl.external_id AS customer_id, p.ledger_rate, coalesce(x.attempts, 0) AS attempts,
       p.lines, p.members
FROM planned p
JOIN closeout_data.currencies cur ON cur.code = p.currency
LEFT JOIN closeout_data.currencies home ON home.code = %(home)s
LEFT JOIN closeout_data.accounting_links cl
       ON cl.system = %(system)s AND cl.company_id = %(company_id)s AND cl.object_kind = 'customer'
      AND cl.closeout_ref = p.client_key
LEFT JOIN closeout_data.accounting_push_exceptions x
       ON x.system = %(system)s AND x.company_id = %(company_id)s AND x.object_kind = 'journal'
      AND x.closeout_ref = p.ref
WHERE NOT EXISTS (SELECT 1 FROM closeout_data.accounting_links k
                  WHERE k.system = %(system)s AND k.company_id = %(company_id)s AND k.object_kind = 'journal'
                    AND k.closeout_ref = p.ref)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_push_batches b
                  WHERE b.system = %(system)s AND b.company_id = %(company_id)s AND b.state = 'pending'
                    AND b.object_kind = 'journal' AND b.items @> jsonb_build_array(jsonb_build_object('ref', p.ref)))
ORDER BY p.txn_date, p.ref
