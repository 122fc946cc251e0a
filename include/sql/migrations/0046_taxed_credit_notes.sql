-- 0046 corrections of taxed invoices credit their tax (issue 17 item 3 follow-up; docs/invoice-tax.md):
--   * closeout_data.corrections.tax_minor: the tax closeout expects the correction to credit, worked out per
--     credit line with closeout_data.line_tax_minor and recorded BEFORE the Stripe call (0 untaxed);
--     credit_total_minor: what the client is credited in all (the net amount_minor plus an exclusive rate's
--     tax; an inclusive rate's tax is inside amount_minor). stripe_tax_minor: the tax Stripe computed.
--   * closeout_data.credit_notes.tax_minor: the tax on a credit note as Stripe reports it (its total_taxes),
--     which the credit note journal debits to tax_payable (45_credit_notes.sql).
--   * the contract views gain these columns (added at the end; nothing renamed).
ALTER TABLE closeout_data.corrections
    ADD COLUMN tax_minor          bigint NOT NULL DEFAULT 0 CHECK (tax_minor >= 0),
    ADD COLUMN credit_total_minor bigint CHECK (credit_total_minor > 0),
    ADD COLUMN stripe_tax_minor   bigint;

ALTER TABLE closeout_data.credit_notes ADD COLUMN tax_minor bigint;

CREATE OR REPLACE VIEW closeout.credit_notes AS
SELECT credit_note_id, invoice_id, currency, amount_minor, status,
       stripe_invoice_id, customer_id, number, pre_payment_amount_minor, post_payment_amount_minor,
       refund_amount_minor, credit_amount_minor, out_of_band_amount_minor, refund_ids, type, reason, memo, metadata,
       created_at, voided_at, first_seen_at, updated_at, coalesce(tax_minor, 0) AS tax_minor
FROM closeout_data.credit_notes;

CREATE OR REPLACE VIEW closeout.corrections AS
SELECT c.correction_id, c.kind, c.invoice_id, i.stripe_invoice_id, c.client_key, c.currency, c.seq,
       c.from_invoice_id, c.from_version, c.amount_minor, c.policy, c.state, c.stripe_object_id AS credit_note_id,
       c.stripe_number, c.pre_payment_amount_minor, c.post_payment_amount_minor, c.refund_amount_minor,
       c.credit_amount_minor, c.out_of_band_amount_minor, c.stop_reason, c.created_at, c.issued_at, c.voided_at,
       (SELECT count(*) FROM closeout_data.correction_entries e WHERE e.correction_id = c.correction_id)::integer
           AS entry_count,
       c.tax_minor, coalesce(c.credit_total_minor, c.amount_minor) AS credit_total_minor, c.stripe_tax_minor
FROM closeout_data.corrections c
LEFT JOIN closeout_data.invoices i ON i.invoice_id = c.invoice_id;
