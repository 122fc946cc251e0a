-- The call is about to be made (committed first: a row left 'sent' means "look it up before sending again").
UPDATE closeout_data.tracker_writebacks
SET status = 'sent', attempts = attempts + 1, sent_at = clock_timestamp(), updated_at = clock_timestamp(),
    request = %(request)s, method = %(method)s
WHERE writeback_id = %(writeback_id)s
