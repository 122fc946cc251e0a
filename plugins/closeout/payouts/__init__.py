"""Contractor payouts: the gate, planning items for work on paid invoices into bounded batches, and releasing
each item as one Stripe transfer, exactly once (see ``closeout_payouts``)."""
