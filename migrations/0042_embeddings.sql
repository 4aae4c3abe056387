-- schema: read
-- CLIP embeddings of scene images and object crops, for similarity search.
--
-- With the pgvector extension (Supabase; pgserver's PostgreSQL) `vec` is a `vector` and the
-- embeddings projector adds one HNSW index per dimension it meets. Without it (Debian's
-- PostgreSQL 15 has no pgvector package) the table still keeps every embedding, as float16
-- bytes, and similarity search answers 503 saying what is missing; after installing
-- pgvector, `modomo replay embeddings` rebuilds the table with the vector column.
--
-- The extension goes into `extensions` when that schema exists (Supabase's convention),
-- else `public`: never into a read-model schema, which replays and tests drop.
DO $migration$
DECLARE
    ext text;
BEGIN
    SELECT n.nspname INTO ext
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'vector';
    IF ext IS NULL AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        ext := CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'extensions')
                    THEN 'extensions' ELSE 'public' END;
        BEGIN
            EXECUTE format('CREATE EXTENSION IF NOT EXISTS vector SCHEMA %I', ext);
        EXCEPTION WHEN insufficient_privilege OR invalid_schema_name THEN
            RAISE NOTICE 'pgvector is available but cannot be created here: %', SQLERRM;
            ext := NULL;
        END;
    END IF;
    EXECUTE format(
        'CREATE TABLE embeddings (
            kind        text        NOT NULL CHECK (kind IN (''scene'', ''object'')),
            item_id     text        NOT NULL,
            scene_id    text        NOT NULL,
            model       text        NOT NULL,
            dim         integer     NOT NULL,
            vec         %s          NOT NULL,
            updated_at  timestamptz NOT NULL,
            PRIMARY KEY (kind, item_id))',
        CASE WHEN ext IS NULL THEN 'bytea' ELSE format('%I.vector', ext) END);
    CREATE INDEX embeddings_scene ON embeddings (scene_id);
END
$migration$;
