-- The token endpoint's answer, stored before the new access token is used. Expiry counts from the transaction's
-- start (before the call), so it errs early, never late.
UPDATE closeout_data.accounting_oauth
SET refresh_token = %(refresh_token)s,
    access_token = %(access_token)s,
    access_expires_at = now() + make_interval(secs => %(expires_in)s::float8),
    refresh_expires_at = CASE WHEN %(refresh_expires_in)s::float8 IS NULL THEN NULL
                              ELSE now() + make_interval(secs => %(refresh_expires_in)s::float8) END,
    refreshed_at = clock_timestamp(),
    refreshes = refreshes + 1,
    last_error = NULL,
    last_error_at = NULL,
    updated_at = clock_timestamp()
WHERE conn_id = %(conn_id)s
RETURNING refreshes
