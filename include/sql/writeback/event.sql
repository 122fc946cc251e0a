INSERT INTO closeout_data.tracker_writeback_events (writeback_id, event, detail)
VALUES (%(writeback_id)s, %(event)s, %(detail)s)
