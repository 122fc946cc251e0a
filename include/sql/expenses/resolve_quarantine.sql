-- A valid version of an expense resolves its open quarantine rows. Params: source.
UPDATE closeout_data.quarantine q
SET resolved_at = clock_timestamp()
WHERE q.source = %(source)s AND q.entity = 'expense' AND q.resolved_at IS NULL
  AND q.source_id IN (SELECT s.source_id FROM stage_expenses s)
