-- Work on paid invoices that is not paid out, reported (never silently dropped): users without an active
-- payee configuration, and amounts that round to zero or less. Rows that no longer apply are removed by
-- the caller (a payee configured later is planned on the same run).
INSERT INTO closeout_data.payout_exceptions AS x (invoice_id, payee_key, reason, hours, entry_count)
SELECT w.invoice_id, w.payee_key,
       CASE WHEN p.payee_key IS NULL THEN 'no_payee_config' ELSE 'non_positive_amount' END,
       w.hours, w.entry_count
FROM payout_work w
LEFT JOIN closeout_data.payout_payees p ON p.payee_key = w.payee_key AND p.active
LEFT JOIN closeout_data.currencies c ON c.code = p.currency
WHERE (p.payee_key IS NULL OR round(w.hours * p.cost_rate * (10::numeric ^ c.exponent)) <= 0)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.payout_items i
                  WHERE i.payee_key = w.payee_key AND i.invoice_id = w.invoice_id)
ON CONFLICT (invoice_id, payee_key, reason) DO UPDATE
    SET hours = EXCLUDED.hours, entry_count = EXCLUDED.entry_count, last_seen_at = clock_timestamp()
