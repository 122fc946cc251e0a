-- The latest event stored for one object of one vendor (taken under lock_object.sql's lock).
SELECT inbox_id, content_key
FROM closeout_data.webhook_inbox
WHERE vendor = %(vendor)s AND object_key = %(object_key)s
ORDER BY inbox_id DESC
LIMIT 1
