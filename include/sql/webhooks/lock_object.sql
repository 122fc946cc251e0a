-- Serialise deliveries about one object of one vendor for the rest of the transaction, so two deliveries
-- of the same content arriving at once cannot both be taken for news.
SELECT pg_advisory_xact_lock(hashtextextended('closeout.webhook_inbox:' || %(vendor)s || ':' || %(object_key)s, 0))
