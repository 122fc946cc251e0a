"""Step 11 of the chain, write-back: the trackers show as billed exactly the time and expenses closeout billed.

``harvest_mirror`` mirrors each invoice issued in Stripe as a Harvest invoice (import of uninvoiced time and
expenses where it selects exactly closeout's items, explicit line items and recorded gaps where it cannot), marks
it sent without e-mail, records the Stripe payments on it and reflects credit notes. ``clockify_flags`` marks the
billed Clockify entries invoiced. ``records`` keeps every write in ``closeout_data.tracker_writebacks``, before and
after the call. Configuration and what finance sees: docs/tracker-writeback.md.
"""
