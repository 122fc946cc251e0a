"""The ledger: balanced double-entry journals posted, set-based, from what the warehouse recorded."""
