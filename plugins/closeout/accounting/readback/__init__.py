"""Read the books back from QuickBooks Online and Xero (issue 17 item 5): what the accounting system itself now says,
through its API, into the warehouse tables the accounting checks read, and the read-back copy the ``accounting_links``
check compares closeout's pushes with (invariant 9). Entry point: ``closeout.accounting.readback.tasks.read_back``.
"""
