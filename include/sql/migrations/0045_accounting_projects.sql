-- 0045 projects as QuickBooks sub-customers (issue 17 item 2): object_kind 'project' in the accounting links and
-- their reviews.
--
-- Where the QuickBooks connection says "projects_as_sub_customers": true, each closeout project billed for a linked
-- client becomes a QuickBooks Customer with Job = true and ParentRef = the client's customer
-- (closeout.accounting.links.link_projects). Its link is a row of closeout_data.accounting_links with object_kind
-- 'project' and closeout_ref '<client_key>/<project_key>' (a project billed for two clients is two sub-customers);
-- the same unique keys as customers' make it one sub-customer per project and company, never two. A project that
-- matches several existing sub-customers of its client, or only nearly one, waits in accounting_link_reviews
-- (object_kind 'project') and is resolved by finance exactly as a customer is.
--
-- The object_kind checks are extended, not restated: the kinds other migrations allow stay allowed whatever order
-- the migrations were written in (the check is rebuilt from its current definition with 'project' added).
DO $$
DECLARE
    target record;
    definition text;
BEGIN
    FOR target IN
        SELECT c.conrelid, c.conname
        FROM pg_constraint c
        WHERE c.conrelid IN ('closeout_data.accounting_links'::regclass,
                             'closeout_data.accounting_link_reviews'::regclass)
          AND c.contype = 'c' AND pg_get_constraintdef(c.oid) LIKE '%object_kind%'
    LOOP
        SELECT pg_get_constraintdef(c.oid) INTO definition
        FROM pg_constraint c WHERE c.conrelid = target.conrelid AND c.conname = target.conname;
        IF definition NOT LIKE '%''project''%' AND definition LIKE '%ARRAY[%' THEN
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', target.conrelid::regclass, target.conname);
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', target.conrelid::regclass, target.conname,
                           replace(definition, 'ARRAY[', 'ARRAY[''project''::text, '));
        END IF;
    END LOOP;
END $$;
