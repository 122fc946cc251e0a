-- Payable work with a configured payee, not yet planned: one item each, for the payee's whole cost (the part a
-- partial refund, credit note or lost dispute took back is a clawback netted from the item's own transfer, so
-- the books show the cost and its reversal, and the cause is named).
SELECT d.invoice_id, d.payee_key, d.currency, d.hours, d.cost_rate, d.entry_count, d.account_id, d.amount_minor
FROM payout_decisions d
WHERE d.verdict = 'payable'
  AND NOT EXISTS (SELECT 1 FROM closeout_data.payout_items x
                  WHERE x.payee_key = d.payee_key AND x.invoice_id = d.invoice_id AND x.currency = d.currency)
ORDER BY d.invoice_id, d.payee_key
