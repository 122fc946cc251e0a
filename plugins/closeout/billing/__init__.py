"""Billing: from approved billable time to invoice drafts, with every hour billed exactly once.

* ``config``: the billing configuration of each client (period, currency, grouping, approval, terms,
  rounding, publish policy, rate cards), loaded from a documented YAML or JSON file.
* ``drafting``: the set-based refresh of drafts for open periods (``include/sql/billing/``).
* ``lifecycle``: what may happen to a draft afterwards: approval, freezing for publication, void.
* ``periods``: accounting months and the month-end period lock, after which a locked month's drafts are
  as fixed as published invoices.
"""
