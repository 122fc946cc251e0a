-- A refresh the token endpoint refused (masked reason, never a token); the stored tokens stay as they were.
UPDATE closeout_data.accounting_oauth
SET last_error = %(error)s, last_error_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE conn_id = %(conn_id)s
