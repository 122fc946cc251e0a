-- What waits for finance (and what finance decided that the next run still has to do).
SELECT review_id, system, company_id, closeout_ref, reason, detail, candidates, state, opened_at
FROM closeout_data.accounting_link_reviews
WHERE state <> 'done'
ORDER BY review_id
