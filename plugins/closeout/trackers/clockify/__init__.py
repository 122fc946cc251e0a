"""Clockify: REST API v1 for reference data, the detailed report for workspace-wide time with approval,
invoicing state and resolved rates."""
