-- The work to pay: per paid invoice and user (payee), the hours of the invoice's current entry rows.
-- An invoice counts as paid only when its status is 'paid' AND an event (or a re-read after contradicting
-- events) made it so: a synchronous "payment initiated" is not a payment.
-- Fills the temporary table payout_work (created by the caller) for this transaction.
INSERT INTO payout_work (invoice_id, payee_key, hours, entry_count)
SELECT e.invoice_id, v.user_key, sum(e.quantity), count(*)
FROM closeout.invoice_line_entries e
JOIN closeout_data.invoices i ON i.invoice_id = e.invoice_id AND i.status = 'paid'
JOIN closeout_data.time_entry_versions v
  ON v.source = e.source AND v.source_id = e.source_id AND v.version = e.version
WHERE EXISTS (SELECT 1 FROM closeout_data.invoice_status_history h
              WHERE h.invoice_id = i.invoice_id AND h.to_status = 'paid' AND h.via IN ('event', 'refetch'))
GROUP BY e.invoice_id, v.user_key
