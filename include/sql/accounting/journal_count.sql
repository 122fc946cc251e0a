-- How many ledger journals were posted in the period (the same filter as journal_lines.sql).
SELECT count(DISTINCT l.journal_id)
FROM closeout.ledger_lines l
WHERE l.posted_at >= %(start)s::timestamp AT TIME ZONE 'UTC'
  AND l.posted_at < %(end)s::timestamp AT TIME ZONE 'UTC'
