-- Close report: the period's figures per client and currency, from the public contract views only.
-- Parameters: period_start, period_end (the month's first and last day).
-- The period's invoices are those whose billing period starts in the month (monthly, both semi-monthly
-- halves, weeks starting in it); void ones are left out (their entries are billed again as adjustments).
-- issued = frozen and on its way to or in Stripe (publishing, open, paid, uncollectible): its content is final.
-- outstanding = the unpaid remainder of issued invoices still collectable (publishing, open); an uncollectible
-- invoice's remainder is written off. The tie-out (billed - paid - written off = outstanding) is computed by
-- the report from these separately summed columns, never assumed. Names: the billing configuration's, else
-- the tracker's. Lines split three ways: time, expenses (first billing of expenses, kind 'expense') and
-- adjustments (adjustment and credit lines, expense corrections included), so time + expenses + adjustments
-- = the invoices' lines.
WITH entries AS (
    SELECT t.client_key, t.currency,
           sum(t.hours) AS hours,
           coalesce(sum(t.billable_hours) FILTER (WHERE t.billable), 0) AS billable_hours,
           count(*) AS entry_count
    FROM closeout.time_entries t
    WHERE t.deleted_at IS NULL AND t.spent_date BETWEEN %(period_start)s AND %(period_end)s
    GROUP BY t.client_key, t.currency
), period_invoices AS (
    SELECT i.invoice_id, i.client_key, i.currency, i.status, i.total_minor, i.amount_paid_minor,
           i.status IN ('publishing', 'open', 'paid', 'uncollectible') AS issued
    FROM closeout.invoices i
    WHERE i.period_start BETWEEN %(period_start)s AND %(period_end)s AND i.status <> 'void'
), line_sums AS (
    SELECT l.invoice_id,
           coalesce(sum(l.amount_minor) FILTER (WHERE l.kind = 'time'), 0) AS time_minor,
           coalesce(sum(l.amount_minor) FILTER (WHERE l.kind = 'expense'), 0) AS expenses_minor,
           coalesce(sum(l.amount_minor) FILTER (WHERE l.kind NOT IN ('time', 'expense')), 0) AS adjustments_minor,
           count(*) FILTER (WHERE l.kind NOT IN ('time', 'expense')) AS adjustment_lines,
           coalesce(sum(l.amount_minor), 0) AS lines_minor
    FROM closeout.invoice_lines l
    JOIN period_invoices p ON p.invoice_id = l.invoice_id
    GROUP BY l.invoice_id
), invoiced AS (
    SELECT p.client_key, p.currency,
           count(*) FILTER (WHERE p.issued) AS invoices,
           coalesce(sum(p.total_minor) FILTER (WHERE p.issued), 0) AS billed_minor,
           coalesce(sum(s.lines_minor) FILTER (WHERE p.issued), 0) AS lines_minor,
           coalesce(sum(s.time_minor) FILTER (WHERE p.issued), 0) AS time_minor,
           coalesce(sum(s.expenses_minor) FILTER (WHERE p.issued), 0) AS expenses_minor,
           coalesce(sum(s.adjustments_minor) FILTER (WHERE p.issued), 0) AS adjustments_minor,
           coalesce(sum(s.adjustment_lines) FILTER (WHERE p.issued), 0) AS adjustment_lines,
           coalesce(sum(p.amount_paid_minor) FILTER (WHERE p.issued), 0) AS paid_minor,
           coalesce(sum(p.total_minor - p.amount_paid_minor) FILTER (WHERE p.status IN ('publishing', 'open')), 0)
               AS outstanding_minor,
           coalesce(sum(p.total_minor - p.amount_paid_minor) FILTER (WHERE p.status = 'uncollectible'), 0)
               AS written_off_minor,
           count(*) FILTER (WHERE NOT p.issued) AS drafts,
           coalesce(sum(p.total_minor) FILTER (WHERE NOT p.issued), 0) AS drafted_minor
    FROM period_invoices p
    LEFT JOIN line_sums s ON s.invoice_id = p.invoice_id
    GROUP BY p.client_key, p.currency
), refunds AS (
    SELECT p.client_key, p.currency, coalesce(sum(x.amount_minor), 0) AS refunded_minor
    FROM closeout.invoice_payments x
    JOIN period_invoices p ON p.invoice_id = x.invoice_id
    WHERE x.kind = 'refund'
    GROUP BY p.client_key, p.currency
), payment_exceptions AS (
    SELECT p.client_key, p.currency, count(*) AS n
    FROM closeout.payment_exceptions e
    JOIN period_invoices p ON p.invoice_id = e.invoice_id
    WHERE e.resolved_at IS NULL
    GROUP BY p.client_key, p.currency
), billing_exceptions AS (
    SELECT b.client_key, b.currency, count(*) AS n
    FROM closeout.billing_exceptions b
    WHERE b.kind = 'exception' AND b.client_key IS NOT NULL
      AND b.spent_date BETWEEN %(period_start)s AND %(period_end)s
    GROUP BY b.client_key, b.currency
), quarantined AS (
    -- a quarantined record of an entry seen valid before belongs to that entry's client; others cannot be mapped
    SELECT t.client_key, t.currency, count(*) AS n
    FROM closeout.quarantine q
    JOIN closeout.time_entries t ON t.source = q.source AND t.source_id = q.source_id
    WHERE q.entity = 'time_entry' AND q.resolved_at IS NULL
      AND t.spent_date BETWEEN %(period_start)s AND %(period_end)s
    GROUP BY t.client_key, t.currency
), tracker_names AS (  -- a client the billing configuration does not name is shown by its tracker's name
    SELECT coalesce(m.key, t.source || ':' || t.source_id) AS client_key, min(t.name) AS name
    FROM closeout_data.tracker_entities t
    LEFT JOIN closeout.identity_map m ON m.source = t.source AND m.kind = 'client' AND m.source_id = t.source_id
    WHERE t.kind = 'client' AND t.name IS NOT NULL
    GROUP BY 1
), keys AS (
    SELECT client_key, currency FROM entries
    UNION SELECT client_key, currency FROM invoiced
    UNION SELECT client_key, currency FROM billing_exceptions
    UNION SELECT client_key, currency FROM quarantined
)
SELECT k.client_key, coalesce(nullif(c.name, ''), tn.name, '') AS client_name, k.currency, cur.exponent,
       coalesce(e.hours, 0) AS hours, coalesce(e.billable_hours, 0) AS billable_hours,
       coalesce(e.entry_count, 0) AS entry_count,
       coalesce(i.invoices, 0) AS invoices, coalesce(i.billed_minor, 0) AS billed_minor,
       coalesce(i.lines_minor, 0) AS lines_minor,
       coalesce(i.time_minor, 0) AS time_minor, coalesce(i.expenses_minor, 0) AS expenses_minor,
       coalesce(i.adjustments_minor, 0) AS adjustments_minor,
       coalesce(i.adjustment_lines, 0) AS adjustment_lines,
       coalesce(i.paid_minor, 0) AS paid_minor, coalesce(i.outstanding_minor, 0) AS outstanding_minor,
       coalesce(i.written_off_minor, 0) AS written_off_minor, coalesce(r.refunded_minor, 0) AS refunded_minor,
       coalesce(i.drafts, 0) AS drafts, coalesce(i.drafted_minor, 0) AS drafted_minor,
       coalesce(pe.n, 0) AS payment_exceptions, coalesce(be.n, 0) AS billing_exceptions,
       coalesce(qu.n, 0) AS quarantined
FROM keys k
JOIN closeout_data.currencies cur ON cur.code = k.currency
LEFT JOIN closeout.billing_clients c ON c.client_key = k.client_key
LEFT JOIN tracker_names tn ON tn.client_key = k.client_key
LEFT JOIN entries e ON e.client_key = k.client_key AND e.currency = k.currency
LEFT JOIN invoiced i ON i.client_key = k.client_key AND i.currency = k.currency
LEFT JOIN refunds r ON r.client_key = k.client_key AND r.currency = k.currency
LEFT JOIN payment_exceptions pe ON pe.client_key = k.client_key AND pe.currency = k.currency
LEFT JOIN billing_exceptions be ON be.client_key = k.client_key AND be.currency = k.currency
LEFT JOIN quarantined qu ON qu.client_key = k.client_key AND qu.currency = k.currency
ORDER BY k.currency, k.client_key;
