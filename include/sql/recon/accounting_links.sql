-- Invariant 9, against what the accounting system itself says (the read-back copy,
-- closeout_data.accounting_remote_objects): every object closeout pushed (closeout_data.accounting_links) exists
-- there exactly once, with the same total and currency.
--
-- Judged per system and company once a read-back of it has succeeded, and only links made before that read-back
-- started (a link made since may not have been read yet). Closeout's figure is the one recorded with the link when
-- the push recorded it (total_minor, currency), else closeout's own invoice or credit note of that ref.
--
-- Rows (all hard, zero tolerance), item "<system> <kind> <closeout ref> -> <external id>":
--   missing    the linked object is not in the read-back copy at all
--   vanished   it was deleted (QuickBooks) or voided/deleted (Xero) there
--   currency   another currency there
--   total      another total there (an accountant's edit): theirs minus ours
--   duplicate  another live object of the same kind there carries the same reference (DocNumber, InvoiceNumber,
--              ContactNumber...): its total, item "... duplicate <its external id>"
--   tax        another tax total there than the tax closeout pushed with the invoice (accounting_links.tax_minor,
--              0043): theirs minus ours
--   not_voided closeout voided the invoice there (remote_state 'void') but the system still holds it live: its total
-- A link closeout voided there (remote_state 'void') is expected voided (QuickBooks: zeroed, PrivateNote "Voided";
-- Xero: VOIDED) or deleted: that is not "vanished", and its total and tax are no longer compared. A QuickBooks
-- invoice voided there that closeout did not void is "vanished", as a deleted one is.
WITH read_back AS (
    SELECT DISTINCT ON (system, company_id) system, company_id, started_at
    FROM closeout_data.accounting_readback_runs
    WHERE status = 'succeeded'
    ORDER BY system, company_id, run_id DESC
), links AS (
    SELECT l.system, l.company_id, l.object_kind, l.closeout_ref, l.external_id, l.tax_minor,
           -- voided there by closeout before this read-back started (a later void is judged by the next one)
           (l.remote_state = 'void' AND l.voided_at < r.started_at) AS voided_by_us,
           upper(coalesce(l.currency, ours.currency)) AS currency, coalesce(l.total_minor, ours.total_minor) AS total_minor,
           l.system || ' ' || l.object_kind || ' ' || l.closeout_ref || ' -> ' || l.external_id AS item
    FROM closeout_data.accounting_links l
    JOIN read_back r ON r.system = l.system AND r.company_id = l.company_id AND l.linked_at < r.started_at
    LEFT JOIN LATERAL (
        SELECT i.currency, i.total_minor FROM closeout.invoices i
        WHERE l.object_kind = 'invoice' AND (i.invoice_id = l.closeout_ref OR i.stripe_number = l.closeout_ref)
        UNION ALL
        SELECT c.currency, c.amount_minor FROM closeout.credit_notes c
        WHERE l.object_kind = 'credit_note' AND c.credit_note_id = l.closeout_ref
        LIMIT 1
    ) ours ON true
), judged AS (
    SELECT l.*, o.external_id IS NOT NULL AS found,
           coalesce(o.deleted, false) OR upper(coalesce(o.status, '')) IN ('VOIDED', 'DELETED') AS deleted,
           o.currency AS their_currency, o.total_minor AS their_total, o.reference, o.tax_minor AS their_tax
    FROM links l
    LEFT JOIN closeout_data.accounting_remote_objects o
           ON o.system = l.system AND o.company_id = l.company_id AND o.object_kind = l.object_kind
          AND o.external_id = l.external_id
)
SELECT 'missing' AS kind, j.currency, j.item, -coalesce(j.total_minor, 0) AS difference_minor, true AS hard
FROM judged j WHERE NOT j.found
UNION ALL
SELECT 'vanished', coalesce(j.currency, j.their_currency), j.item, -coalesce(j.total_minor, j.their_total, 0), true
FROM judged j WHERE j.found AND j.deleted AND NOT coalesce(j.voided_by_us, false)
UNION ALL
SELECT 'not_voided', coalesce(j.currency, j.their_currency), j.item || ' (voided by closeout, live there)',
       coalesce(j.their_total, 0), true
FROM judged j WHERE j.found AND NOT j.deleted AND coalesce(j.voided_by_us, false)
UNION ALL
SELECT 'tax', j.currency, j.item || ' tax', coalesce(j.their_tax, 0) - j.tax_minor, true
FROM judged j
WHERE j.found AND NOT j.deleted AND NOT coalesce(j.voided_by_us, false) AND j.tax_minor IS NOT NULL
  AND coalesce(j.their_tax, 0) <> j.tax_minor
  AND (j.currency IS NULL OR j.their_currency IS NULL OR j.currency = j.their_currency)
UNION ALL
SELECT 'currency', j.currency, j.item || ' (' || j.their_currency || ' there)', coalesce(j.their_total, 0), true
FROM judged j
WHERE j.found AND NOT j.deleted AND NOT coalesce(j.voided_by_us, false) AND j.currency IS NOT NULL
  AND j.their_currency IS NOT NULL AND j.currency <> j.their_currency
UNION ALL
SELECT 'total', j.currency, j.item, coalesce(j.their_total, 0) - j.total_minor, true
FROM judged j
WHERE j.found AND NOT j.deleted AND NOT coalesce(j.voided_by_us, false) AND j.total_minor IS NOT NULL
  AND j.their_total IS DISTINCT FROM j.total_minor
  AND (j.currency IS NULL OR j.their_currency IS NULL OR j.currency = j.their_currency)
UNION ALL
SELECT 'duplicate', coalesce(d.currency, j.currency), j.item || ' duplicate ' || d.external_id,
       coalesce(d.total_minor, 0), true
FROM judged j
JOIN closeout_data.accounting_remote_objects d
  ON d.system = j.system AND d.company_id = j.company_id AND d.object_kind = j.object_kind
 AND d.reference = j.reference AND d.external_id <> j.external_id AND NOT d.deleted
WHERE j.reference IS NOT NULL
