-- 0042 invoice tax (issue 17 item 3): tax on the invoice itself, per client.
--
--   * per-client tax configuration on billing_clients (a mirror of the billing config file's `tax`):
--     a rate (percentage, inclusive or exclusive, a display name and jurisdiction) or an exemption, and
--     the tax code each accounting system books it with; all NULL/false = untaxed, as before;
--   * each invoice carries the tax configuration it was drafted with (rebuilt while it is a draft, frozen
--     with its content at publication) and its tax: tax_minor, the sum of its lines' taxes, each line's
--     tax rounded once, half-up, in the currency's minor unit (closeout_data.line_tax_minor). total_minor
--     stays what the client owes: the sum of the lines plus the tax when the rate is exclusive (an
--     inclusive rate's tax is inside the line amounts);
--   * closeout_data.stripe_tax_rates: the Stripe Tax Rate made for each distinct (rate, inclusive, name,
--     jurisdiction), created once under a deterministic idempotency key recorded in the outbox first
--     (operation 'tax_rate.create'); stripe_publications.stripe_tax_minor: the tax Stripe computed;
--   * public contract (DESIGN.md; the accounting push reads it): closeout.invoices gains tax_minor (0 when
--     untaxed) and tax_inclusive (NULL when untaxed); closeout.invoice_line_taxes has one row per current
--     line of every invoice with a tax configuration (rate or exemption); untaxed invoices have none.

-- ---------------------------------------------------------------------------------------------
-- Per-client configuration
-- ---------------------------------------------------------------------------------------------
ALTER TABLE closeout_data.billing_clients
    ADD COLUMN tax_rate_percent    numeric CHECK (tax_rate_percent >= 0 AND tax_rate_percent <= 100),
    ADD COLUMN tax_inclusive       boolean,
    ADD COLUMN tax_exempt          boolean NOT NULL DEFAULT false,
    ADD COLUMN tax_name            text,
    ADD COLUMN tax_jurisdiction    text,
    ADD COLUMN tax_quickbooks_code text,
    ADD COLUMN tax_xero_type       text,
    ADD CONSTRAINT billing_clients_tax_shape CHECK (
        (tax_exempt AND tax_rate_percent IS NULL AND tax_inclusive IS NULL)
        OR (NOT tax_exempt AND (tax_rate_percent IS NULL) = (tax_inclusive IS NULL)));

CREATE VIEW closeout.billing_tax_options AS
SELECT client_key, name, tax_rate_percent, tax_inclusive, tax_exempt, tax_name, tax_jurisdiction,
       tax_quickbooks_code, tax_xero_type, updated_at
FROM closeout_data.billing_clients;

-- ---------------------------------------------------------------------------------------------
-- The tax an invoice carries
-- ---------------------------------------------------------------------------------------------
ALTER TABLE closeout_data.invoices
    ADD COLUMN tax_minor           bigint NOT NULL DEFAULT 0,
    ADD COLUMN tax_rate_percent    numeric,
    ADD COLUMN tax_inclusive       boolean,
    ADD COLUMN tax_exempt          boolean NOT NULL DEFAULT false,
    ADD COLUMN tax_name            text,
    ADD COLUMN tax_jurisdiction    text,
    ADD COLUMN tax_quickbooks_code text,
    ADD COLUMN tax_xero_type       text,
    ADD CONSTRAINT invoices_tax_shape CHECK (
        (tax_exempt AND tax_rate_percent IS NULL AND tax_inclusive IS NULL AND tax_minor = 0)
        OR (NOT tax_exempt AND tax_rate_percent IS NULL AND tax_inclusive IS NULL AND tax_minor = 0)
        OR (NOT tax_exempt AND tax_rate_percent IS NOT NULL AND tax_inclusive IS NOT NULL));

ALTER TABLE closeout_data.invoice_versions ADD COLUMN tax_minor bigint NOT NULL DEFAULT 0;

-- A frozen invoice's tax is final, as its lines are: only a draft's tax columns may change.
CREATE FUNCTION closeout_data.guard_invoice_tax() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'draft' AND (NEW.tax_minor, NEW.tax_rate_percent, NEW.tax_inclusive, NEW.tax_exempt,
                                  NEW.tax_name, NEW.tax_jurisdiction, NEW.tax_quickbooks_code, NEW.tax_xero_type)
        IS DISTINCT FROM (OLD.tax_minor, OLD.tax_rate_percent, OLD.tax_inclusive, OLD.tax_exempt,
                          OLD.tax_name, OLD.tax_jurisdiction, OLD.tax_quickbooks_code, OLD.tax_xero_type) THEN
        RAISE EXCEPTION 'closeout: invoice % is frozen; its tax is final', OLD.invoice_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoices_tax_frozen
    BEFORE UPDATE OF tax_minor, tax_rate_percent, tax_inclusive, tax_exempt, tax_name, tax_jurisdiction,
                     tax_quickbooks_code, tax_xero_type ON closeout_data.invoices
    FOR EACH ROW EXECUTE FUNCTION closeout_data.guard_invoice_tax();

-- One line's tax, in minor units: exclusive, amount x rate; inclusive, the part of the amount that is tax
-- (amount - amount / (1 + rate) = amount x rate / (100 + rate)); rounded once, half-up (away from zero, so
-- a credit line's tax is the exact negative of the same debit's). The amount is already in the currency's
-- minor unit, so rounding to a whole number is rounding in that unit (JPY yen, KWD fils). Stripe rounds
-- per line the same way; the sandbox (sandbox/stripe/money.py) implements the same formula.
CREATE FUNCTION closeout_data.line_tax_minor(amount_minor bigint, rate_percent numeric, inclusive boolean)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN rate_percent IS NULL OR rate_percent = 0 THEN 0::bigint
                WHEN inclusive THEN round(amount_minor * rate_percent / (100 + rate_percent))::bigint
                ELSE round(amount_minor * rate_percent / 100)::bigint END
$$;

-- ---------------------------------------------------------------------------------------------
-- Stripe Tax Rates (one per distinct rate, inclusive, display name and jurisdiction)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE closeout_data.stripe_tax_rates (
    tax_rate_key        text PRIMARY KEY,
    rate_percent        numeric NOT NULL CHECK (rate_percent >= 0 AND rate_percent <= 100),
    inclusive           boolean NOT NULL,
    display_name        text NOT NULL,
    jurisdiction        text,
    idempotency_key     text NOT NULL UNIQUE,
    stripe_tax_rate_id  text UNIQUE,
    recorded_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_at          timestamptz
);

-- The tax Stripe put on each published invoice (the sum of its total_taxes), next to its total: the
-- publication stops before finalizing when it differs from ours; invoices_to_stripe compares it.
ALTER TABLE closeout_data.stripe_publications ADD COLUMN stripe_tax_minor bigint;

CREATE OR REPLACE VIEW closeout.stripe_publications AS
SELECT p.invoice_id, p.version, p.client_key, p.currency, p.total_minor, p.stripe_total_minor, p.line_count,
       p.parts_total, p.parts_added, p.state, p.stripe_customer_id, p.stripe_invoice_id, p.stop_reason, p.started_at,
       p.updated_at, p.finalized_at, p.due_date, p.stripe_tax_minor
FROM closeout_data.stripe_publications p;

DO $$
DECLARE
    found record;
    operations text[] := ARRAY['tax_rate.create'];
BEGIN
    FOR found IN
        SELECT c.conname, pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c
        WHERE c.conrelid = 'closeout_data.stripe_outbox'::regclass AND c.contype = 'c'
          AND pg_get_constraintdef(c.oid) LIKE '%operation%'
    LOOP
        operations := operations
            || array(SELECT m[1] FROM regexp_matches(found.definition, '([a-z_]+\.[a-z_]+)', 'g') m);
        EXECUTE format('ALTER TABLE closeout_data.stripe_outbox DROP CONSTRAINT IF EXISTS %I', found.conname);
    END LOOP;
    EXECUTE format('ALTER TABLE closeout_data.stripe_outbox ADD CONSTRAINT stripe_outbox_operation_check '
                   'CHECK (operation IN (%s))',
                   (SELECT string_agg(quote_literal(op), ', ' ORDER BY op)
                    FROM (SELECT DISTINCT unnest(operations) AS op) o));
END $$;

-- ---------------------------------------------------------------------------------------------
-- Public contract (DESIGN.md). Columns may be added, never renamed.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW closeout.invoices AS
SELECT i.invoice_id, i.client_key, i.period_start, i.period_end, i.currency, i.status, i.total_minor,
       i.stripe_invoice_id, i.hosted_invoice_url, i.amount_paid_minor,
       i.version, i.line_count, i.entry_count, i.billing_period, i.payment_terms_days, i.publish_policy,
       i.approved_version, i.approved_by, i.approved_at, i.frozen_version, i.frozen_at, i.stripe_number,
       i.hosted_invoice_url_expires_at, i.created_at, i.updated_at,
       c.name AS client_name,
       coalesce(i.period_end <= (SELECT max(l.period_end) FROM closeout_data.period_locks l), false)
           AS period_locked,
       i.tax_minor, i.tax_inclusive, i.tax_rate_percent, i.tax_exempt, i.tax_name, i.tax_jurisdiction
FROM closeout_data.invoices i
LEFT JOIN closeout_data.billing_clients c ON c.client_key = i.client_key;

CREATE OR REPLACE VIEW closeout.invoice_versions AS
SELECT v.invoice_id, v.version, v.draft_run_id, v.built_at, v.total_minor, v.line_count, v.entry_count, v.tax_minor
FROM closeout_data.invoice_versions v;

-- One row per current line of every invoice with a tax configuration (a rate or an exemption).
-- taxable_minor is the line's amount excluding tax (for an inclusive rate, its amount minus its tax);
-- tax_minor is 0 for an exempt invoice. The lines' tax_minor sum to closeout.invoices.tax_minor.
CREATE VIEW closeout.invoice_line_taxes AS
SELECT l.invoice_id, l.line_no,
       l.amount_minor - CASE WHEN i.tax_inclusive THEN t.tax_minor ELSE 0 END AS taxable_minor,
       t.tax_minor, i.tax_rate_percent AS rate_percent, i.tax_inclusive AS inclusive, i.tax_exempt AS exempt,
       i.tax_quickbooks_code AS quickbooks_tax_code, i.tax_xero_type AS xero_tax_type,
       i.tax_name, i.tax_jurisdiction, i.currency
FROM closeout_data.invoices i
JOIN closeout_data.current_invoice_lines l ON l.invoice_id = i.invoice_id
CROSS JOIN LATERAL (
    SELECT closeout_data.line_tax_minor(l.amount_minor, i.tax_rate_percent, i.tax_inclusive) AS tax_minor
) t
WHERE i.tax_exempt OR i.tax_rate_percent IS NOT NULL;

CREATE VIEW closeout.stripe_tax_rates AS
SELECT tax_rate_key, rate_percent, inclusive, display_name, jurisdiction, stripe_tax_rate_id, recorded_at,
       created_at
FROM closeout_data.stripe_tax_rates;

GRANT SELECT ON closeout.invoice_line_taxes, closeout.billing_tax_options, closeout.stripe_tax_rates,
    closeout.invoices TO closeout_pipeline, closeout_finance;
GRANT SELECT ON closeout_data.stripe_tax_rates TO closeout_finance;
GRANT SELECT, INSERT, UPDATE ON closeout_data.stripe_tax_rates TO closeout_pipeline;
GRANT EXECUTE ON FUNCTION closeout_data.line_tax_minor(bigint, numeric, boolean)
    TO closeout_pipeline, closeout_finance;
