-- Per invoice and user with work on it (payout_work): is the work payable now, and for how much.
--   amount_minor   the payee's cost: hours x cost rate, rounded once, half-up (round() rounds half away from
--                  zero), in the payee's currency
--   payable_minor  what is payable on the invoice's current state: the cost times the share of the invoice the
--                  customer still pays for, (total - refunded - credited - lost in disputes) / total, rounded
--                  down to the minor unit (pro rata, the same share for every payee on the invoice)
--   verdict        payable | no_payee_config | non_positive_amount | dispute_open (held until the dispute ends)
--                  | pilot_shadow (the invoice's client or period is outside the pilot cohort: docs/pilot.md)
--                  | not_payable (nothing left payable: refunded, credited or lost)
--                  | currency_minor_unit (Stripe reads the payee currency's minor unit differently from ISO 4217:
--                  ISK, IQD and the like; a transfer would move 100 times, or a tenth of, the amount)
-- Parameters: stripe_zero_decimal and stripe_three_decimal, Stripe's own minor-unit lists
-- (closeout.payments.publish, the same table publishing uses); Stripe reads every other currency with 2.
-- Fills the temporary table payout_decisions (created by the caller) for this transaction.
INSERT INTO payout_decisions (invoice_id, payee_key, currency, hours, cost_rate, entry_count, account_id,
                              amount_minor, payable_minor, verdict, detail)
SELECT w.invoice_id, w.payee_key, p.currency, w.hours, p.cost_rate, w.entry_count, p.account_id, a.amount_minor,
       pay.payable_minor,
       CASE WHEN NOT closeout_data.pilot_live(w.invoice_id) THEN 'pilot_shadow'  -- not in the pilot cohort
            WHEN p.payee_key IS NULL THEN 'no_payee_config'
            WHEN c.exponent <> st.exponent THEN 'currency_minor_unit'
            WHEN a.amount_minor <= 0 THEN 'non_positive_amount'
            WHEN s.held THEN 'dispute_open'
            WHEN pay.payable_minor <= 0 THEN 'not_payable'
            ELSE 'payable' END,
       CASE WHEN p.payee_key IS NOT NULL AND c.exponent <> st.exponent
            THEN p.currency || ' has ' || c.exponent || ' decimals in ISO 4217 but ' || st.exponent
                 || ' in Stripe: a transfer would be misread, so none is made' ELSE s.detail END
FROM payout_work w
LEFT JOIN closeout_data.payout_payees p ON p.payee_key = w.payee_key AND p.active
LEFT JOIN closeout_data.currencies c ON c.code = p.currency
LEFT JOIN payout_invoice_state s ON s.invoice_id = w.invoice_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN p.currency = ANY(%(stripe_zero_decimal)s) THEN 0
                WHEN p.currency = ANY(%(stripe_three_decimal)s) THEN 3 ELSE 2 END AS exponent
) st
CROSS JOIN LATERAL (SELECT round(w.hours * p.cost_rate * (10::numeric ^ c.exponent))::bigint AS amount_minor) a
CROSS JOIN LATERAL (
    SELECT CASE WHEN s.invoice_id IS NULL OR a.amount_minor <= 0 THEN a.amount_minor
                WHEN s.total_minor <= 0 THEN 0
                ELSE floor(a.amount_minor::numeric * (s.total_minor - s.reduced_minor) / s.total_minor)::bigint
           END AS payable_minor
) pay
