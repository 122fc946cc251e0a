-- Expenses recognised as cost (migration 0038, docs/expense-books.md). For every expense whose current version
-- is not booked yet, the version is booked once (closeout_data.expense_bookings) and its journal posts the
-- difference between what it says and what the expense's latest booking said:
--   recognised amount  the expense's amount when approved and not deleted, else 0 (unapproved, deleted)
--   cost role          reimbursable_expenses when billable (cost to be rebilled), project_costs when not
--   credit role        reimbursements_payable when the person paid it (closeout_data.expense_payer_rules, first
--                      matching rule), expense_clearing when the company did
-- The new state is debited to the cost role and credited to the credit role, the previous state reversed; the
-- legs are netted per currency and role, so an edit posts the difference, a deletion or un-approval reverses
-- what was booked, and a version that changes nothing the books care about (notes, receipt) is booked with no
-- journal. One journal per expense version and currency (kind 'expense', source =
-- expense:<source>:<source_id>:v<version>:<CUR>): an expense whose currency changed reverses in the old currency
-- and books in the new one, each journal balanced in its own currency. Versions superseded before a posting
-- ran are not booked on their own: the current version is booked against the latest booking.
WITH head AS (
    SELECT v.source, v.source_id, v.version, v.currency, v.client_key, v.user_key, v.category, v.billable,
           v.spent_date, v.seen_at, v.deleted_at IS NOT NULL AS deleted,
           CASE WHEN v.approved AND v.deleted_at IS NULL THEN v.amount_minor ELSE 0 END AS amount_minor
    FROM closeout_data.expense_heads h
    JOIN closeout.expense_versions v ON v.source = h.source AND v.source_id = h.source_id AND v.version = h.version
    WHERE NOT EXISTS (SELECT 1 FROM closeout_data.expense_bookings b
                      WHERE b.source = h.source AND b.source_id = h.source_id AND b.version >= h.version)
), prev AS (
    SELECT DISTINCT ON (b.source, b.source_id) b.source, b.source_id, b.currency, b.amount_minor, b.cost_role,
           b.paid_by
    FROM closeout_data.expense_bookings b
    JOIN head h ON h.source = b.source AND h.source_id = b.source_id
    ORDER BY b.source, b.source_id, b.version DESC
), decided AS (
    SELECT h.*, CASE WHEN h.billable THEN 'reimbursable_expenses' ELSE 'project_costs' END AS cost_role,
           CASE WHEN r.reimbursable THEN 'person' ELSE 'company' END AS paid_by, r.label AS payer_rule,
           p.currency AS prev_currency, coalesce(p.amount_minor, 0) AS prev_amount, p.cost_role AS prev_cost_role,
           p.paid_by AS prev_paid_by
    FROM head h
    LEFT JOIN prev p ON p.source = h.source AND p.source_id = h.source_id
    CROSS JOIN LATERAL (
        SELECT r.reimbursable, r.label FROM closeout_data.expense_payer_rules r
        WHERE (r.source IS NULL OR r.source = h.source) AND (r.category IS NULL OR r.category = h.category)
          AND (r.user_key IS NULL OR r.user_key = h.user_key)
        ORDER BY r.rule_no LIMIT 1
    ) r
), legs AS (
    SELECT d.source, d.source_id, d.version, d.prev_currency AS currency, x.role, x.signed
    FROM decided d
    CROSS JOIN LATERAL (VALUES
        (d.prev_cost_role, -d.prev_amount),
        (CASE d.prev_paid_by WHEN 'person' THEN 'reimbursements_payable' ELSE 'expense_clearing' END, d.prev_amount)
    ) AS x (role, signed)
    WHERE d.prev_amount > 0
    UNION ALL
    SELECT d.source, d.source_id, d.version, d.currency, x.role, x.signed
    FROM decided d
    CROSS JOIN LATERAL (VALUES
        (d.cost_role, d.amount_minor),
        (CASE d.paid_by WHEN 'person' THEN 'reimbursements_payable' ELSE 'expense_clearing' END, -d.amount_minor)
    ) AS x (role, signed)
    WHERE d.amount_minor > 0
), net AS (  -- debit positive, credit negative; what nets to zero is not posted
    SELECT l.source, l.source_id, l.version, l.currency, l.role, sum(l.signed)::bigint AS signed,
           'expense:' || l.source || ':' || l.source_id || ':v' || l.version || ':' || l.currency AS ref
    FROM legs l
    GROUP BY l.source, l.source_id, l.version, l.currency, l.role
    HAVING sum(l.signed) <> 0
), booked AS (
    INSERT INTO closeout_data.expense_bookings (source, source_id, version, currency, amount_minor, cost_role,
                                                paid_by, payer_rule, user_key, client_key, change, ledger_run_id)
    SELECT d.source, d.source_id, d.version, d.currency, d.amount_minor, d.cost_role, d.paid_by, d.payer_rule,
           d.user_key, d.client_key,
           CASE WHEN d.deleted THEN 'deleted'
                WHEN d.amount_minor = 0 AND d.prev_amount > 0 THEN 'unapproved'
                WHEN d.amount_minor = 0 THEN 'not_approved'
                WHEN d.prev_amount = 0 THEN 'approved'
                WHEN (d.amount_minor, d.currency, d.cost_role, d.paid_by)
                     IS DISTINCT FROM (d.prev_amount, d.prev_currency, d.prev_cost_role, d.prev_paid_by) THEN 'edited'
                ELSE 'unchanged' END,
           %(run)s
    FROM decided d
    ON CONFLICT DO NOTHING
    RETURNING source, source_id, version, change
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, occurred_at,
                                        ledger_run_id, description)
    SELECT closeout_data.journal_id('expense', n.ref), 'expense', n.ref, n.currency, d.client_key, d.seen_at,
           %(run)s,
           'Expense ' || d.source || ':' || d.source_id || ' v' || d.version || ' ' || b.change
               || coalesce(' (' || d.category || ')', '') || ', spent ' || d.spent_date::text || ' by ' || d.user_key
               || CASE d.paid_by WHEN 'person' THEN ', paid by the person' ELSE ', paid by the company' END
    FROM (SELECT DISTINCT source, source_id, version, currency, ref FROM net) n
    JOIN booked b ON b.source = n.source AND b.source_id = n.source_id AND b.version = n.version
    JOIN decided d ON d.source = n.source AND d.source_id = n.source_id AND d.version = n.version
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, row_number() OVER (PARTITION BY p.journal_id ORDER BY n.signed < 0, n.role)::integer,
       n.currency, n.role,
       CASE n.role WHEN 'project_costs' THEN %(project_costs)s
                   WHEN 'reimbursable_expenses' THEN %(reimbursable_expenses)s
                   WHEN 'reimbursements_payable' THEN %(reimbursements_payable)s
                   ELSE %(expense_clearing)s END,
       greatest(n.signed, 0), greatest(-n.signed, 0)
FROM posted p
JOIN net n ON n.ref = p.source_ref;
