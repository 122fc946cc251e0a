-- A person reconnected the company and put a new first refresh token into the Airflow connection: the stored
-- chain is dead, start again from the connection's token (under the row lock taken by oauth_lock.sql).
UPDATE closeout_data.accounting_oauth
SET refresh_token = %(refresh_token)s, seed_sha256 = %(seed_sha256)s, company_id = %(company_id)s,
    access_token = NULL, access_expires_at = NULL, last_error = NULL, last_error_at = NULL,
    updated_at = clock_timestamp()
WHERE conn_id = %(conn_id)s
