-- The outcome of one channel's delivery for a cause: 'sent' is final, 'failed' is tried again next time.
INSERT INTO closeout_data.alert_deliveries AS d (cause_id, channel, status, subject, last_error, sent_at)
VALUES (%(cause_id)s, %(channel)s, %(status)s, %(subject)s, %(error)s,
        CASE WHEN %(status)s = 'sent' THEN clock_timestamp() END)
ON CONFLICT (cause_id, channel) DO UPDATE
    SET status = excluded.status, subject = excluded.subject, last_error = excluded.last_error,
        sent_at = excluded.sent_at, attempts = d.attempts + 1, attempted_at = clock_timestamp()
