"""Expense capture (Harvest and Clockify; Toggl Track has no expenses): versioned like time entries."""
