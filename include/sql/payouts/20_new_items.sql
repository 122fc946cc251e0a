-- Work with a configured payee, priced at the payee's cost rate in the payee's currency, rounded once
-- (half-up: amounts are positive here, and round() rounds half away from zero), not yet planned.
SELECT w.invoice_id, w.payee_key, p.currency, w.hours, p.cost_rate, w.entry_count, p.account_id,
       round(w.hours * p.cost_rate * (10::numeric ^ c.exponent))::bigint AS amount_minor
FROM payout_work w
JOIN closeout_data.payout_payees p ON p.payee_key = w.payee_key AND p.active
JOIN closeout_data.currencies c ON c.code = p.currency
WHERE round(w.hours * p.cost_rate * (10::numeric ^ c.exponent)) > 0
  AND NOT EXISTS (SELECT 1 FROM closeout_data.payout_items x
                  WHERE x.payee_key = w.payee_key AND x.invoice_id = w.invoice_id AND x.currency = p.currency)
ORDER BY w.invoice_id, w.payee_key
