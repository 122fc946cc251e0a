"""The accounting export (QuickBooks Online and Xero import files, per period) and its reverse: the
accounting system's own exports ingested into the warehouse, to reconcile against."""
