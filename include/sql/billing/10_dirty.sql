-- Which entries to judge again: new entries, entries with a new version since they were last judged,
-- and entries forced back (entry_version = -1: config or identity change, voided invoice).
-- One merge of the heads with what was judged; everything after this touches only the dirty set.
-- The user and day an entry counted toward before come along: the 24-hour rule looks at the day it
-- left as well as the day it is on now. No primary key: on a first run this holds every entry, and
-- every later step joins it by hash or probes the permanent tables' keys from it.
-- Created from its query (not declared, then filled) so the comparison may run on parallel workers.
-- Columns: known (judged before: has a billing_entries row), version (the head's version, the one to
-- judge), and the user and day it counted toward.
CREATE TEMP TABLE billing_dirty ON COMMIT DROP AS
SELECT h.source, h.source_id, b.source_id IS NOT NULL AS known, h.version,
       b.user_key AS old_user_key, b.spent_date AS old_spent_date
FROM closeout_data.time_entry_heads h
LEFT JOIN closeout_data.billing_entries b ON b.source = h.source AND b.source_id = h.source_id
WHERE b.source_id IS NULL OR b.entry_version <> h.version;

-- A first run: nothing judged, nothing invoiced and no period locked yet, so every entry is new and
-- none is billed through adjustments. Steps that would join every entry to billing_dirty read all
-- entries instead.
CREATE TEMP TABLE billing_run ON COMMIT DROP AS
SELECT NOT EXISTS (SELECT 1 FROM closeout_data.billing_entries)
       AND NOT EXISTS (SELECT 1 FROM closeout_data.invoices)
       AND %(locked_through)s::date IS NULL AS first_run;
