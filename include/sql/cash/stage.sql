-- Per-session stage tables: each page (or batch of events) is COPYed here, upserted set-based into the cash
-- tables, then truncated. Column names and order match closeout.payments.cash.normalize.COLUMNS (+ event_id,
-- set when the rows come from events, to record each event's outcome).
CREATE TEMP TABLE IF NOT EXISTS cash_stage_balance_transaction (
    balance_transaction_id text, type text, reporting_category text, currency text, amount_minor bigint,
    fee_minor bigint, net_minor bigint, fee_details jsonb, exchange_rate numeric, source_id text, status text,
    description text, created bigint, available_on bigint, payout_id text, observed_at timestamptz, event_id text);
CREATE TEMP TABLE IF NOT EXISTS cash_stage_charge (
    charge_id text, payment_intent_id text, stripe_invoice_id text, customer_id text, currency text,
    amount_minor bigint, amount_refunded_minor bigint, balance_transaction_id text, status text, disputed boolean,
    created bigint, observed_at timestamptz, event_id text);
CREATE TEMP TABLE IF NOT EXISTS cash_stage_payout (
    payout_id text, currency text, amount_minor bigint, status text, automatic boolean, arrival_date bigint,
    created bigint, balance_transaction_id text, failure_balance_transaction_id text, failure_code text,
    failure_message text, method text, type text, reconciliation_status text, observed_at timestamptz,
    event_id text);
CREATE TEMP TABLE IF NOT EXISTS cash_stage_refund (
    refund_id text, charge_id text, payment_intent_id text, currency text, amount_minor bigint, status text,
    reason text, failure_reason text, balance_transaction_id text, failure_balance_transaction_id text,
    metadata jsonb, created bigint, observed_at timestamptz, event_id text);
CREATE TEMP TABLE IF NOT EXISTS cash_stage_credit_note (
    credit_note_id text, stripe_invoice_id text, customer_id text, number text, currency text, amount_minor bigint,
    pre_payment_amount_minor bigint, post_payment_amount_minor bigint, refund_amount_minor bigint,
    credit_amount_minor bigint, out_of_band_amount_minor bigint, refund_ids text[], type text, status text,
    reason text, memo text, metadata jsonb, created bigint, voided_at bigint, observed_at timestamptz,
    event_id text, tax_minor bigint);
CREATE TEMP TABLE IF NOT EXISTS cash_stage_dispute (
    dispute_id text, charge_id text, payment_intent_id text, currency text, amount_minor bigint, status text,
    reason text, created bigint, closed_at bigint, observed_at timestamptz, event_id text);
CREATE TEMP TABLE IF NOT EXISTS cash_stage_invoice_payment (
    invoice_payment_id text, stripe_invoice_id text, payment_type text, payment_intent_id text, charge_id text,
    currency text, amount_paid_minor bigint, status text, paid_at bigint, created bigint, observed_at timestamptz,
    event_id text);
CREATE TEMP TABLE IF NOT EXISTS cash_stage_invoice (
    stripe_invoice_id text, customer_id text, number text, currency text, status text, total_minor bigint,
    amount_due_minor bigint, amount_paid_minor bigint, amount_remaining_minor bigint,
    pre_payment_credit_notes_amount_minor bigint, post_payment_credit_notes_amount_minor bigint, created bigint,
    metadata jsonb, observed_at timestamptz, event_id text, starting_balance_minor bigint, ending_balance_minor bigint);
-- Keys of the rows the upserts wrote in this session since the last link pass: what resolve_touched.sql links.
CREATE TEMP TABLE IF NOT EXISTS cash_touched_balance_transaction (id text);
CREATE TEMP TABLE IF NOT EXISTS cash_touched_charge (id text);
CREATE TEMP TABLE IF NOT EXISTS cash_touched_payout (id text);
CREATE TEMP TABLE IF NOT EXISTS cash_touched_refund (id text);
CREATE TEMP TABLE IF NOT EXISTS cash_touched_credit_note (id text);
CREATE TEMP TABLE IF NOT EXISTS cash_touched_dispute (id text);
CREATE TEMP TABLE IF NOT EXISTS cash_touched_invoice_payment (id text);
CREATE TEMP TABLE IF NOT EXISTS cash_touched_invoice (id text);
