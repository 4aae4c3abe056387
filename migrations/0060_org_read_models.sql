-- schema: read
-- Organisations (docs: README "Organisations"). Every read model gets the organisation of
-- its rows, and row-level security so that a role other than the tables' owner sees only
-- the rows of the organisation its transaction names:
--
--     SELECT set_config('modomo.org', 'acme', true);   -- true: this transaction only
--
-- which works through Supabase's transaction pooler, since nothing outlives the
-- transaction. Without the setting a reader sees no rows at all (fails closed).
--
-- Each policy reads its own table's column only, never a parent table: a replay swaps
-- tables into the live schema one projector at a time, and a policy pointing at another
-- table would follow that table into the dropped shadow schema.
--
-- The projectors, migrations and replays run as the tables' owner, which row-level security
-- does not restrict (no FORCE ROW LEVEL SECURITY, on purpose: a projector folds every
-- organisation's events). The API runs its reads as a non-owner role (MODOMO_DB_API_ROLE)
-- and filters by organisation in its own queries as well.
--
-- Rows from before organisations belong to the default organisation: the column default
-- fills them without rewriting the tables (PostgreSQL 11+ stores a constant default in
-- the catalogue), so the migration takes no long lock and needs no downtime; a replay
-- agrees, because events without an `org` field decode as the default organisation.
DO $migration$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['datasets', 'scenes', 'scene_styles', 'objects',
                             'object_materials', 'reviews', 'jobs', 'job_scenes', 'exports',
                             'evaluations', 'embeddings']
    LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN org_id text NOT NULL DEFAULT %L',
                       t, 'default');
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY org_isolation ON %I '
            'USING (org_id = current_setting(''modomo.org'', true)) '
            'WITH CHECK (org_id = current_setting(''modomo.org'', true))', t);
    END LOOP;
END
$migration$;

-- Which organisation each scene belongs to, as the embeddings projector learns it from
-- registrations (a stage event names its scene, not its organisation).
CREATE TABLE embedding_scene_orgs (
    scene_id  text PRIMARY KEY,
    org_id    text NOT NULL
);
ALTER TABLE embedding_scene_orgs ENABLE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON embedding_scene_orgs
    USING (org_id = current_setting('modomo.org', true))
    WITH CHECK (org_id = current_setting('modomo.org', true));

-- The organisation's lists, newest first.
CREATE INDEX datasets_org ON datasets (org_id, created_at DESC, dataset_id);
CREATE INDEX jobs_org ON jobs (org_id, created_at DESC, job_id);
CREATE INDEX exports_org ON exports (org_id, requested_at DESC, export_id);
