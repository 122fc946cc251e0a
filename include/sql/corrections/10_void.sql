-- A credit note voided in Stripe (closeout_data.credit_notes, kept by the cash sync) voids its correction: what
-- it credited is billed again. Its entries are judged again, so the next drafting run bills the difference
-- (the drafting leaves void corrections out of what is billed, as it does void invoices).
WITH voided AS (
    UPDATE closeout_data.corrections c
    SET state = 'void', voided_at = coalesce(n.voided_at, clock_timestamp()), updated_at = clock_timestamp()
    FROM closeout_data.credit_notes n
    WHERE n.credit_note_id = c.stripe_object_id AND n.status = 'void' AND c.state <> 'void'
    RETURNING c.correction_id
)
UPDATE closeout_data.billing_entries b SET entry_version = -1
FROM (SELECT DISTINCT e.source, e.source_id
      FROM closeout_data.correction_entries e JOIN voided v ON v.correction_id = e.correction_id) x
WHERE b.source = x.source AND b.source_id = x.source_id;
