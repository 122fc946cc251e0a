-- The first refresh token comes from the Airflow connection. Inserted once (a concurrent seeder loses quietly);
-- never overwrites a stored chain: re-seeding after a reconnect is oauth_reseed.sql, under the row lock.
INSERT INTO closeout_data.accounting_oauth (conn_id, system, company_id, refresh_token, seed_sha256)
VALUES (%(conn_id)s, %(system)s, %(company_id)s, %(refresh_token)s, %(seed_sha256)s)
ON CONFLICT (conn_id) DO NOTHING
