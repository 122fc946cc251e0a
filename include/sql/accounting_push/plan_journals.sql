-- The remaining journals (Stripe fees, refunds, disputes, credit notes, FX, Stripe payouts to the bank, write-offs,
-- contractor payouts, ...) not yet in the accounting system: every ledger journal except the kinds the invoice and
-- payment documents already book there (%(document_kinds)s). A journal spanning currencies goes as one entry per
-- currency (each balances on its own, invariant 4), ref '<journal_id>:<currency>'; a single-currency journal's ref
-- is its id. Lines carry their role, ledger account and client (receivable lines name the customer).
WITH parts AS (
    SELECT l.journal_id, l.currency,
           count(*) OVER (PARTITION BY l.journal_id) AS part_count
    FROM (SELECT DISTINCT jl.journal_id, jl.currency FROM closeout_data.journal_lines jl) l
), refs AS (
    SELECT p.journal_id, p.currency,
           CASE WHEN p.part_count = 1 THEN p.journal_id ELSE p.journal_id || ':' || p.currency END AS ref
    FROM parts p
)
SELECT r.ref, j.client_key, r.currency, j.kind,
       (SELECT sum(l.debit_minor) FROM closeout_data.journal_lines l
         WHERE l.journal_id = r.journal_id AND l.currency = r.currency) AS total_minor,
       (j.occurred_at AT TIME ZONE 'UTC')::date AS txn_date, cur.exponent, j.description, j.source_ref,
       cl.external_id AS customer_id,
       (SELECT bt.exchange_rate FROM closeout_data.stripe_balance_transactions bt
         WHERE upper(bt.presentment_currency) = r.currency AND upper(bt.currency) = %(home)s
           AND bt.exchange_rate IS NOT NULL
           AND (bt.charge_id = j.charge_id OR bt.created_at <= j.occurred_at)
         ORDER BY bt.charge_id IS NOT DISTINCT FROM j.charge_id DESC, bt.created_at DESC LIMIT 1) AS ledger_rate,
       coalesce(x.attempts, 0) AS attempts,
       (SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'account', l.account_code, 'role', l.role,
                                            'debit_minor', l.debit_minor, 'credit_minor', l.credit_minor)
                         ORDER BY l.line_no)
          FROM closeout_data.journal_lines l
         WHERE l.journal_id = r.journal_id AND l.currency = r.currency) AS lines
FROM refs r
JOIN closeout_data.journals j ON j.journal_id = r.journal_id
JOIN closeout_data.currencies cur ON cur.code = r.currency
LEFT JOIN closeout_data.accounting_links cl
       ON cl.system = %(system)s AND cl.company_id = %(company_id)s AND cl.object_kind = 'customer'
      AND cl.closeout_ref = j.client_key
LEFT JOIN closeout_data.accounting_push_exceptions x
       ON x.system = %(system)s AND x.company_id = %(company_id)s AND x.object_kind = 'journal'
      AND x.closeout_ref = r.ref
WHERE j.kind <> ALL(%(document_kinds)s::text[])
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_links k
                  WHERE k.system = %(system)s AND k.company_id = %(company_id)s AND k.object_kind = 'journal'
                    AND k.closeout_ref = r.ref)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_push_batches b
                  WHERE b.system = %(system)s AND b.company_id = %(company_id)s AND b.state = 'pending'
                    AND b.object_kind = 'journal' AND b.items @> jsonb_build_array(jsonb_build_object('ref', r.ref)))
ORDER BY txn_date, r.ref
