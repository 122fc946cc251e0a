-- Realised FX: per charge, fx_clearing holds the presentment amounts converted (in the presentment currency)
-- against what Stripe settled them at (in the settlement currency). While the charge's money is with us the two
-- sides are the same value at the charge's rate. When its presentment side nets to zero (refunded, lost in a
-- dispute, in full) while the settlement side does not, the money went back at another rate: that settlement
-- residual is the realised gain or loss, closed to fx_gain_loss (kind 'fx_realised', source = charge_id:n, n
-- counting the charge's earlier realisations, in the settlement currency; a debit residual is a loss, a credit
-- one a gain). Posted after the conversions of the same run, once per closing: afterwards the charge's
-- fx_clearing is zero in both currencies, so the next run finds nothing; a charge whose presentment side moves
-- again (a refund that failed, a dispute won) and closes again gets realisation n+1.
WITH fx AS (
    SELECT j.charge_id, min(j.currency) FILTER (WHERE j.kind = 'fx_conversion') AS settlement,
           count(DISTINCT j.currency) FILTER (WHERE j.kind = 'fx_conversion') AS settlements,
           count(*) FILTER (WHERE j.kind = 'fx_realised') AS n,
           max(j.occurred_at) FILTER (WHERE j.kind = 'fx_conversion') AS occurred_at,
           (array_agg(j.source_ref ORDER BY j.occurred_at DESC, j.source_ref DESC)
                FILTER (WHERE j.kind = 'fx_conversion'))[1] AS closing_txn,
           min(j.client_key) AS client_key, min(j.invoice_id) AS invoice_id
    FROM closeout_data.journals j
    WHERE j.charge_id IS NOT NULL AND j.kind IN ('fx_conversion', 'fx_realised')
    GROUP BY j.charge_id
), src AS (
    SELECT f.*, b.presentment_minor, b.settlement_minor
    FROM fx f
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(l.debit_minor - l.credit_minor) FILTER (WHERE l.currency <> f.settlement), 0)
                   AS presentment_minor,
               coalesce(sum(l.debit_minor - l.credit_minor) FILTER (WHERE l.currency = f.settlement), 0)
                   AS settlement_minor,
               count(DISTINCT l.currency) FILTER (WHERE l.currency <> f.settlement) AS presentments
        FROM closeout_data.journals j
        JOIN closeout_data.journal_lines l ON l.journal_id = j.journal_id AND l.role = 'fx_clearing'
        WHERE j.charge_id = f.charge_id AND j.kind IN ('fx_conversion', 'fx_realised')
    ) b
    WHERE f.settlements = 1 AND b.presentments = 1 AND b.presentment_minor = 0 AND b.settlement_minor <> 0
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description, charge_id)
    SELECT closeout_data.journal_id('fx_realised', s.charge_id || ':' || s.n), 'fx_realised', s.charge_id || ':' || s.n,
           s.settlement, s.client_key, s.invoice_id, s.occurred_at, %(run)s,
           'Realised FX ' || CASE WHEN s.settlement_minor > 0 THEN 'loss' ELSE 'gain' END || ' on charge '
               || s.charge_id || ': ' || abs(s.settlement_minor) || ' ' || s.settlement
               || ' (minor units), closed by ' || s.closing_txn,
           s.charge_id
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, charge_id
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, s.settlement, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.charge_id = p.charge_id
CROSS JOIN LATERAL (VALUES
    (1, 'fx_gain_loss', %(fx_gain_loss)s, greatest(s.settlement_minor, 0), greatest(-s.settlement_minor, 0)),
    (2, 'fx_clearing', %(fx_clearing)s, greatest(-s.settlement_minor, 0), greatest(s.settlement_minor, 0))
) AS l (line_no, role, account_code, debit_minor, credit_minor);
