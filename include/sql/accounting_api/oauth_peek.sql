-- The stored access token of one connection if it is still good for at least margin_seconds, read without a lock
-- (the fast path of every API call); the seed hash says whether the connection was reconnected since.
SELECT access_token,
       access_expires_at > now() + make_interval(secs => %(margin_seconds)s::float8) AS fresh,
       seed_sha256,
       extract(epoch FROM access_expires_at - now())::float8 AS seconds_left
FROM closeout_data.accounting_oauth
WHERE conn_id = %(conn_id)s
