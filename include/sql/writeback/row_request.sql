-- What a write-back row recorded when it was sent (to finish it from a lookup exactly as the answer would have).
SELECT request, method FROM closeout_data.tracker_writebacks WHERE writeback_id = %(writeback_id)s
