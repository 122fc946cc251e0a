-- Record a write BEFORE it is sent (committed on its own): the first attempt inserts, a retry counts itself.
-- Returns the row as first recorded, so the caller can refuse a key reused with a different body.
INSERT INTO closeout_data.accounting_api_outbox AS o
       (system, company_id, request_id, operation, business_ref, payload_sha256, attempts, last_sent_at)
VALUES (%(system)s, %(company_id)s, %(request_id)s, %(operation)s, %(business_ref)s, %(payload_sha256)s, 1,
        clock_timestamp())
ON CONFLICT (system, company_id, request_id) DO UPDATE
SET attempts = o.attempts + 1, last_sent_at = clock_timestamp()
RETURNING outbox_id, payload_sha256, operation, business_ref, status, external_id, attempts
