"""Toggl Track: API v9 for reference data, Reports API v3 for workspace-wide time with resolved rates."""
