-- Display names of clients, projects and people: the billing configuration's client name, else the tracker's;
-- a payee's configured name, else the tracker's user name. Keys through the identity map, as the views do.
-- Parameter: keys (text[]): only these keys are named.
WITH tracker AS (
    SELECT t.kind, coalesce(m.key, t.source || ':' || t.source_id) AS key, min(t.name) AS name
    FROM closeout_data.tracker_entities t
    LEFT JOIN closeout.identity_map m ON m.source = t.source AND m.kind = t.kind AND m.source_id = t.source_id
    WHERE t.kind IN ('client', 'project', 'user') AND t.name IS NOT NULL AND t.name <> ''
    GROUP BY 1, 2
)
SELECT k.key,
       coalesce(nullif(b.name, ''), nullif(p.name, ''), tc.name, tp.name, tu.name) AS name
FROM unnest(%(keys)s::text[]) AS k(key)
LEFT JOIN closeout.billing_clients b ON b.client_key = k.key
LEFT JOIN closeout.payout_payees p ON p.payee_key = k.key
LEFT JOIN tracker tc ON tc.kind = 'client' AND tc.key = k.key
LEFT JOIN tracker tp ON tp.kind = 'project' AND tp.key = k.key
LEFT JOIN tracker tu ON tu.kind = 'user' AND tu.key = k.key;
