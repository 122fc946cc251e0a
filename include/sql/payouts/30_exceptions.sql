-- Work on paid invoices that is not paid out, reported (never silently dropped): users without an active
-- payee configuration, amounts that round to zero or less, work held by an open dispute, and work on an invoice
-- refunded, credited or lost so far that nothing is payable (detail names the causes), and work in a currency
-- whose minor unit Stripe reads differently from ISO 4217 (detail says how). Rows that no longer
-- apply are removed by the caller (a payee configured later, or a dispute won, is planned on the same run).
INSERT INTO closeout_data.payout_exceptions AS x (invoice_id, payee_key, reason, hours, entry_count, detail)
SELECT d.invoice_id, d.payee_key, d.verdict, d.hours, d.entry_count,
       CASE WHEN d.verdict IN ('dispute_open', 'not_payable', 'currency_minor_unit') THEN d.detail END
FROM payout_decisions d
WHERE d.verdict <> 'payable'
  AND NOT EXISTS (SELECT 1 FROM closeout_data.payout_items i
                  WHERE i.payee_key = d.payee_key AND i.invoice_id = d.invoice_id)
ON CONFLICT (invoice_id, payee_key, reason) DO UPDATE
    SET hours = EXCLUDED.hours, entry_count = EXCLUDED.entry_count, detail = EXCLUDED.detail,
        last_seen_at = clock_timestamp()
