-- Take the connection's token row for a refresh. The lock is held across the call to the token endpoint and
-- released by the commit that stores its answer: a second task waits here, then finds a fresh access token
-- (judged on clock_timestamp(): the wait for the lock may have been long).
SELECT system, company_id, refresh_token, seed_sha256, access_token,
       access_expires_at > clock_timestamp() + make_interval(secs => %(margin_seconds)s::float8) AS fresh,
       extract(epoch FROM access_expires_at - clock_timestamp())::float8 AS seconds_left
FROM closeout_data.accounting_oauth
WHERE conn_id = %(conn_id)s
FOR UPDATE
