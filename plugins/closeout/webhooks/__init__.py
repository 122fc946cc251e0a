"""Inbound webhooks: verify, store raw in the inbox, answer fast. Processing happens in the DAGs."""
