-- A valid version of an entry resolves its open quarantine rows. Params: source, entity.
UPDATE closeout_data.quarantine q
SET resolved_at = clock_timestamp()
WHERE q.source = %(source)s AND q.entity = %(entity)s AND q.resolved_at IS NULL
  AND q.source_id IN (SELECT s.source_id FROM stage_time_entries s)
