-- Record project sub-customer links (matched or created) in one statement; the unique keys make a second link for
-- the same project or the same sub-customer a no-op. A review finance decided as 'create' closes with the new id.
WITH x AS (
    SELECT * FROM jsonb_to_recordset(%(links)s::jsonb)
        AS t(closeout_ref text, external_id text, remote_version text, matched_by text, pushed_sha256 text,
             review_id bigint, detail text)
), ins AS (
    INSERT INTO closeout_data.accounting_links (system, company_id, object_kind, closeout_ref, external_id,
                                                remote_version, matched_by, pushed_sha256, review_id, detail,
                                                synced_at)
    SELECT %(system)s, %(company_id)s, 'project', closeout_ref, external_id, remote_version, matched_by,
           pushed_sha256, review_id, detail, clock_timestamp()
    FROM x
    ON CONFLICT DO NOTHING
    RETURNING closeout_ref, external_id
), closed AS (
    UPDATE closeout_data.accounting_link_reviews r
       SET state = 'done', resolution = 'created', external_id = x.external_id, closed_at = clock_timestamp()
      FROM x
     WHERE r.review_id = x.review_id AND r.state = 'create' AND r.object_kind = 'project'
    RETURNING r.review_id
)
SELECT closeout_ref, external_id FROM ins
