"""Push the books to QuickBooks Online and Xero, exactly once (issue 17 item 4, invariant 9).

``plan`` reads, set-based, what the ledger booked and the accounting system does not hold yet (invoices with their
lines, payments applied to their invoices, the remaining journals); ``books`` shapes each record for one system
and talks to it through its hook (batches of 30 / arrays of 50); ``run`` writes every batch with its exact body
before sending it, records each answered object in ``closeout.accounting_links`` and holds what cannot go in
``closeout.accounting_push_exceptions``; ``tasks`` are the DAG's callables.
"""
