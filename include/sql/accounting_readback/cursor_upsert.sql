-- Where the next incremental read of a stream continues; only ever moved forward.
INSERT INTO closeout_data.accounting_readback_cursors AS c (system, company_id, stream, cursor, run_id)
VALUES (%(system)s, %(company_id)s, %(stream)s, %(cursor)s, %(run_id)s)
ON CONFLICT (system, company_id, stream) DO UPDATE
SET cursor = greatest(c.cursor, EXCLUDED.cursor), run_id = EXCLUDED.run_id, updated_at = clock_timestamp()
