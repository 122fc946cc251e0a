-- Invoice finalisation: an invoice Stripe finalised is owed by its client. Debit receivable (the client on the
-- journal), credit revenue, for the invoice's total as closeout computed it (invariant 3 ties it to Stripe's).
-- Tax: closeout's drafts carry none today; once they do, this journal gains a third line crediting the
-- tax_payable role for the tax and revenue is credited with the total less tax (the chart defines the account).
-- Posted once per invoice (kind 'invoice', source = invoice_id), also for invoices voided since: the void
-- step then reverses it, so the ledger shows both.
WITH src AS (
    SELECT i.invoice_id, i.client_key, i.currency, i.total_minor, p.finalized_at
    FROM closeout_data.invoices i
    JOIN closeout_data.stripe_publications p ON p.invoice_id = i.invoice_id AND p.state = 'finalized'
    WHERE i.status IN ('open', 'paid', 'uncollectible', 'void') AND i.total_minor > 0
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j WHERE j.kind = 'invoice' AND j.source_ref = i.invoice_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description)
    SELECT closeout_data.journal_id('invoice', s.invoice_id), 'invoice', s.invoice_id, s.currency, s.client_key,
           s.invoice_id, coalesce(s.finalized_at, clock_timestamp()), %(run)s,
           'Invoice ' || s.invoice_id || ' finalised in Stripe'
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, invoice_id, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.invoice_id = p.invoice_id
CROSS JOIN LATERAL (VALUES
    (1, 'receivable', %(receivable)s, s.total_minor, 0::bigint),
    (2, 'revenue', %(revenue)s, 0::bigint, s.total_minor)
) AS l (line_no, role, account_code, debit_minor, credit_minor);
