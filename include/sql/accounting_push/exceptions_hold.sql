-- Records that cannot go, with their reason; a record held again counts one more attempt (its next try goes under
-- a new idempotency key, so a vendor's stored refusal is not replayed once the cause is fixed).
INSERT INTO closeout_data.accounting_push_exceptions AS e (system, company_id, object_kind, closeout_ref, reason,
                                                           detail, currency, total_minor)
SELECT %(system)s, %(company_id)s, object_kind, closeout_ref, reason, left(detail, 2000), currency, total_minor
FROM jsonb_to_recordset(%(holds)s::jsonb)
    AS t(object_kind text, closeout_ref text, reason text, detail text, currency text, total_minor bigint)
ON CONFLICT (system, company_id, object_kind, closeout_ref) DO UPDATE
   SET reason = excluded.reason, detail = excluded.detail, currency = excluded.currency,
       total_minor = excluded.total_minor, attempts = e.attempts + 1, last_held_at = clock_timestamp(),
       resolved_at = NULL
