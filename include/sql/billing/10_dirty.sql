-- Which entries to judge again: new entries, entries with a new version since they were last judged,
-- and entries forced back (entry_version = -1: config or identity change, voided invoice).
-- One merge of two primary keys; everything after this touches only the dirty set.
CREATE TEMP TABLE billing_dirty (
    source     text COLLATE "C" NOT NULL,
    source_id  text COLLATE "C" NOT NULL,
    known      boolean NOT NULL DEFAULT true,   -- judged before (has a billing_entries row)
    PRIMARY KEY (source, source_id)
) ON COMMIT DROP;

INSERT INTO billing_dirty (source, source_id, known)
SELECT h.source, h.source_id, b.source_id IS NOT NULL
FROM closeout_data.time_entry_heads h
LEFT JOIN closeout_data.billing_entries b ON b.source = h.source AND b.source_id = h.source_id
WHERE b.source_id IS NULL OR b.entry_version <> h.version;

ANALYZE billing_dirty;
