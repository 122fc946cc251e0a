-- 0043 accounting tax and voids (issue 17 items 3-5, invariant 9): pushed invoices keep closeout's tax there, and an
-- invoice closeout voided after it was pushed is voided there once.
--
-- * closeout_data.accounting_links gains tax_minor (the tax closeout pushed with the invoice, minor units; NULL for
--   objects without tax), remote_state ('void' once closeout voided the object there; NULL: as pushed) and
--   voided_at. The accounting_links check compares the tax too, and expects a voided link voided there (not
--   vanished, not still open).
-- * closeout_data.accounting_remote_objects gains tax_minor: the system's own tax total of the object as read back
--   (QuickBooks TxnTaxDetail.TotalTax, Xero TotalTax).
-- * closeout_data.accounting_push_exceptions reasons gain 'tax_mismatch' (the system's tax or total differs from
--   closeout's: never silently accepted) and 'has_payments' (a voided invoice has payments applied there: finance
--   removes them first). The reason list is rebuilt from the current definition, so reasons another migration
--   added stay.

ALTER TABLE closeout_data.accounting_links
    ADD COLUMN IF NOT EXISTS tax_minor bigint,
    ADD COLUMN IF NOT EXISTS remote_state text CHECK (remote_state IN ('void')),
    ADD COLUMN IF NOT EXISTS voided_at timestamptz;

ALTER TABLE closeout_data.accounting_remote_objects ADD COLUMN IF NOT EXISTS tax_minor bigint;

DO $$
DECLARE
    found record;
    reasons text[] := ARRAY['tax_mismatch', 'has_payments'];
BEGIN
    FOR found IN
        SELECT c.conname, pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c
        WHERE c.conrelid = 'closeout_data.accounting_push_exceptions'::regclass AND c.contype = 'c'
          AND pg_get_constraintdef(c.oid) LIKE '%reason%'
    LOOP
        reasons := reasons || array(SELECT m[1] FROM regexp_matches(found.definition, '''([a-z_]+)''', 'g') m);
        EXECUTE format('ALTER TABLE closeout_data.accounting_push_exceptions DROP CONSTRAINT IF EXISTS %I',
                       found.conname);
    END LOOP;
    EXECUTE format('ALTER TABLE closeout_data.accounting_push_exceptions ADD CONSTRAINT '
                   'accounting_push_exceptions_reason_check CHECK (reason IN (%s))',
                   (SELECT string_agg(quote_literal(r), ', ' ORDER BY r) FROM (SELECT DISTINCT unnest(reasons) AS r) x));
END $$;

CREATE OR REPLACE VIEW closeout.accounting_links AS
SELECT system, object_kind, closeout_ref, external_id, status, synced_at, company_id, remote_version, matched_by,
       linked_at, updated_at, detail, review_id, total_minor, currency, tax_minor, remote_state, voided_at
FROM closeout_data.accounting_links;

CREATE OR REPLACE VIEW closeout.accounting_remote_objects AS
SELECT system, company_id, entity, external_id, object_kind, reference, txn_date, currency, total_minor, status,
       deleted, remote_version, remote_updated_at, read_at, run_id, tax_minor
FROM closeout_data.accounting_remote_objects;
