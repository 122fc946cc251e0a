UPDATE closeout_data.accounting_push_batches SET sends = sends + 1 WHERE batch_id = %(batch_id)s
