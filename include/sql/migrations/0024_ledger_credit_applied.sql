-- 0024 customer credit in the books (issue 13 item 3 follow-up): a customer's Stripe credit balance used on a
-- later invoice, and the credit closeout itself puts on a customer's balance for a draft that nets negative.
-- The posting SQL is include/sql/ledger/47_*.sql .. 49_*.sql; docs/ledger.md says what each means for finance.
--
-- 1. Journal kinds (kind / source_ref):
--      customer_balance_credit    correction_id      a draft that netted negative became a credit on the client's
--                                                    Stripe customer balance (closeout_data.corrections, kind
--                                                    'customer_balance', migration 0021): debit credit_notes
--                                                    (contra revenue, as a credit note's credit_amount), credit
--                                                    customer_credit
--      customer_credit_applied    invoice_id         Stripe applied the customer's balance to the invoice when it
--                                                    finalised it (ending_balance - starting_balance): a credit
--                                                    balance pays part of the invoice, debit customer_credit,
--                                                    credit receivable (a debit balance, owed by the customer, is
--                                                    added to the invoice: the same lines the other way round).
--                                                    No cash moves: Stripe's own balance is untouched
--      customer_credit_unapplied  journal_id         the invoice was voided: Stripe gives the balance it used back
--                                                    to the customer; the applied journal reversed
-- 2. closeout_data.stripe_invoice_snapshots gains starting_balance_minor / ending_balance_minor (Stripe's
--    invoice fields, signed as Stripe signs a customer balance: negative = credit owed to the customer), filled
--    by the cash sync's invoice listing. Snapshots read before this migration have them NULL until re-listed.
-- 3. closeout.invoice_customer_balance: per invoice, the customer balance Stripe applied to it (from the invoice
--    snapshot, else from Stripe's invoice events while the list has not yet shown the invoice finalised).
-- 4. closeout.receivable_by_client (invariant 5): an open invoice's unpaid remainder is also less the customer
--    balance Stripe applied to it (Stripe's amount_due already is).

-- Widen the kind checks to the union with whatever they hold now (other migrations add kinds too).
DO $$
DECLARE
    kind_constraint text;
    kinds text[];
    reversal_constraint text;
    reversal_kinds text[];
BEGIN
    SELECT c.conname, array(SELECT m[1] FROM regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g') m)
    INTO kind_constraint, kinds
    FROM pg_constraint c
    WHERE c.conrelid = 'closeout_data.journals'::regclass AND c.contype = 'c'
      AND pg_get_constraintdef(c.oid) LIKE '%kind%' AND pg_get_constraintdef(c.oid) NOT LIKE '%reverses_journal_id%'
      AND pg_get_constraintdef(c.oid) LIKE '%''invoice''%';
    kinds := array(SELECT DISTINCT unnest(kinds || ARRAY['customer_balance_credit', 'customer_credit_applied',
                                                          'customer_credit_unapplied']) ORDER BY 1);
    EXECUTE format('ALTER TABLE closeout_data.journals DROP CONSTRAINT %I', kind_constraint);
    EXECUTE format('ALTER TABLE closeout_data.journals ADD CONSTRAINT journals_kind_check '
                   'CHECK (kind = ANY (%L::text[]))', kinds);

    SELECT c.conname, array(SELECT m[1] FROM regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g') m)
    INTO reversal_constraint, reversal_kinds
    FROM pg_constraint c
    WHERE c.conrelid = 'closeout_data.journals'::regclass AND c.contype = 'c'
      AND pg_get_constraintdef(c.oid) LIKE '%reverses_journal_id IS NOT NULL%'
      AND pg_get_constraintdef(c.oid) LIKE '%kind%';
    reversal_kinds := array(SELECT DISTINCT unnest(reversal_kinds || ARRAY['customer_credit_unapplied']) ORDER BY 1);
    EXECUTE format('ALTER TABLE closeout_data.journals DROP CONSTRAINT %I', reversal_constraint);
    EXECUTE format('ALTER TABLE closeout_data.journals ADD CONSTRAINT journals_reversal_check '
                   'CHECK ((kind = ANY (%L::text[])) = (reverses_journal_id IS NOT NULL))', reversal_kinds);
END $$;

ALTER TABLE closeout_data.stripe_invoice_snapshots
    ADD COLUMN starting_balance_minor bigint,
    ADD COLUMN ending_balance_minor bigint;

-- The public snapshot view gains the two columns (appended: the contract columns stay as they are).
CREATE OR REPLACE VIEW closeout.stripe_invoice_snapshots AS
SELECT stripe_invoice_id, customer_id, invoice_id, number, currency, status, total_minor, amount_due_minor,
       amount_paid_minor, amount_remaining_minor, pre_payment_credit_notes_amount_minor,
       post_payment_credit_notes_amount_minor, created_at, metadata, seen_at, first_seen_at, updated_at,
       starting_balance_minor, ending_balance_minor
FROM closeout_data.stripe_invoice_snapshots;

-- Per closeout invoice: the customer balance Stripe applied when it finalised the invoice. applied_minor > 0: a
-- credit balance paid that much of the invoice; < 0: a debit balance (the customer owed it) was added to it.
-- From what Stripe's invoice list last said (the cash sync's snapshot) once it shows the invoice finalised with the
-- balance fields; until then (the list read it as a draft, or before 0024) from the newest of Stripe's events
-- about the invoice that shows it finalised (invoice.finalized and later: the fields never change after
-- finalisation). source says which.
CREATE VIEW closeout.invoice_customer_balance AS
SELECT i.invoice_id, i.stripe_invoice_id, i.client_key, i.currency, i.status AS invoice_status,
       b.starting_balance_minor, b.ending_balance_minor,
       b.ending_balance_minor - b.starting_balance_minor AS applied_minor, b.source, b.seen_at
FROM closeout_data.invoices i
LEFT JOIN closeout_data.stripe_invoice_snapshots s
       ON s.stripe_invoice_id = i.stripe_invoice_id AND s.status IS DISTINCT FROM 'draft'
      AND s.starting_balance_minor IS NOT NULL AND s.ending_balance_minor IS NOT NULL
LEFT JOIN LATERAL (
    SELECT (e.body #>> '{data,object,starting_balance}')::bigint AS starting_balance_minor,
           (e.body #>> '{data,object,ending_balance}')::bigint AS ending_balance_minor, e.created_at AS seen_at
    FROM closeout_data.stripe_events e
    WHERE s.stripe_invoice_id IS NULL AND e.object_id = i.stripe_invoice_id AND e.object_type = 'invoice'
      AND e.body #>> '{data,object,status}' <> 'draft'
      AND e.body #>> '{data,object,starting_balance}' IS NOT NULL
      AND e.body #>> '{data,object,ending_balance}' IS NOT NULL
    ORDER BY e.created_at DESC, e.event_id DESC
    LIMIT 1
) v ON true
CROSS JOIN LATERAL (
    SELECT coalesce(s.starting_balance_minor, v.starting_balance_minor) AS starting_balance_minor,
           coalesce(s.ending_balance_minor, v.ending_balance_minor) AS ending_balance_minor,
           CASE WHEN s.stripe_invoice_id IS NOT NULL THEN 'invoice_list' ELSE 'event' END AS source,
           coalesce(s.seen_at, v.seen_at) AS seen_at
) b
WHERE i.stripe_invoice_id IS NOT NULL AND i.status IN ('open', 'paid', 'uncollectible', 'void')
  AND b.ending_balance_minor <> b.starting_balance_minor;

-- Invariant 5 with credit notes and customer balance: an open invoice owes its total less what was paid, less
-- its issued credit notes' pre-payment part, less the customer balance Stripe applied to it at finalisation
-- (what Stripe's amount_remaining says; the customer_credit_applied journal credits the receivable by it).
CREATE OR REPLACE VIEW closeout.receivable_by_client AS
WITH ledger AS (
    SELECT j.client_key, l.currency, sum(l.debit_minor - l.credit_minor) AS ledger_minor
    FROM closeout_data.journal_lines l
    JOIN closeout_data.journals j ON j.journal_id = l.journal_id
    WHERE l.role = 'receivable'
    GROUP BY j.client_key, l.currency
), credited AS (
    SELECT c.invoice_id, sum(c.pre_payment_amount_minor) AS pre_payment_minor
    FROM closeout_data.credit_notes c
    WHERE c.status = 'issued' AND c.invoice_id IS NOT NULL
    GROUP BY c.invoice_id
), applied AS (
    SELECT b.invoice_id, sum(b.applied_minor) AS applied_minor
    FROM closeout.invoice_customer_balance b
    GROUP BY b.invoice_id
), invoices AS (
    SELECT i.client_key, i.currency,
           sum(i.total_minor - i.amount_paid_minor - coalesce(c.pre_payment_minor, 0) - coalesce(a.applied_minor, 0))
               AS unpaid_minor,
           count(*) AS open_invoices
    FROM closeout_data.invoices i
    LEFT JOIN credited c ON c.invoice_id = i.invoice_id
    LEFT JOIN applied a ON a.invoice_id = i.invoice_id
    WHERE i.status = 'open'
    GROUP BY i.client_key, i.currency
)
SELECT coalesce(l.client_key, i.client_key) AS client_key, coalesce(l.currency, i.currency) AS currency,
       coalesce(l.ledger_minor, 0) AS ledger_receivable_minor, coalesce(i.unpaid_minor, 0) AS open_unpaid_minor,
       coalesce(l.ledger_minor, 0) - coalesce(i.unpaid_minor, 0) AS difference_minor,
       coalesce(i.open_invoices, 0) AS open_invoices,
       coalesce(l.ledger_minor, 0) = coalesce(i.unpaid_minor, 0) AS holds
FROM ledger l
FULL JOIN invoices i ON i.client_key = l.client_key AND i.currency = l.currency;
