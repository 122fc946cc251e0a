-- Weekly summary within its budget (issue 16 item 7: one week of a 1,000,000-entry warehouse in under 5 s).
--
-- Every weekly summary query (time lines, payroll hours, changes since last summarised) and the close report's
-- margin view pick one week's (or month's) time by closeout.time_entries.spent_date, which is the version's
-- spent_date: without an index each of them read all of time_entry_versions. With this one the planner reads the
-- week's versions only (about 2% of a year's warehouse) and joins their heads by primary key.
-- (An index on time_entry_heads.spent_date would not be used: the public view filters on the version's date.)
CREATE INDEX IF NOT EXISTS time_entry_versions_by_spent_date
    ON closeout_data.time_entry_versions (spent_date);

-- Time not yet approved, at any date up to the week's end (the summary's "unapproved" table): a small partial
-- index (a few percent of versions are unapproved and not deleted) instead of a scan of all history.
CREATE INDEX IF NOT EXISTS time_entry_versions_unapproved
    ON closeout_data.time_entry_versions (spent_date)
    WHERE NOT approved AND deleted_at IS NULL;
