-- How many ledger journals the period's journal files carry (the same filter as journal_lines.sql), and how many
-- were left out because the invoice files carry them.
SELECT count(DISTINCT l.journal_id) FILTER (WHERE l.kind <> ALL(%(invoice_file_kinds)s::text[])),
       count(DISTINCT l.journal_id) FILTER (WHERE l.kind = ANY(%(invoice_file_kinds)s::text[]))
FROM closeout.ledger_lines l
WHERE l.posted_at >= %(start)s::timestamp AT TIME ZONE 'UTC'
  AND l.posted_at < %(end)s::timestamp AT TIME ZONE 'UTC'
