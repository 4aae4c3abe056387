-- schema: read
-- Dataset products: exports, golden-set evaluations, and what duplicate detection needs.

-- The object store's ETag of each upload: equal ETags, equal bytes (register-scenes warns).
ALTER TABLE scenes ADD COLUMN etag text NOT NULL DEFAULT '';
CREATE INDEX scenes_etag ON scenes (etag) WHERE etag <> '';

CREATE TABLE exports (
    export_id      text        PRIMARY KEY,
    dataset_id     text        NOT NULL,
    format         text        NOT NULL,
    as_of          text        NOT NULL DEFAULT '',
    reviewed_only  boolean     NOT NULL DEFAULT false,
    requested_by   text        NOT NULL DEFAULT '',
    status         text        NOT NULL,
    position       text,
    scenes         integer     NOT NULL DEFAULT 0,
    objects        integer     NOT NULL DEFAULT 0,
    key            text,
    size_bytes     bigint,
    sha256         text,
    error          text,
    attempts       integer     NOT NULL DEFAULT 0,
    requested_at   timestamptz NOT NULL,
    started_at     timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX exports_dataset ON exports (dataset_id, requested_at DESC);

CREATE TABLE evaluations (
    evaluation_id  text        PRIMARY KEY,
    golden         text        NOT NULL,
    golden_sha256  text        NOT NULL,
    job_id         text        NOT NULL,
    models         jsonb       NOT NULL DEFAULT '{}',
    profile        text        NOT NULL DEFAULT '',
    scenes         integer     NOT NULL DEFAULT 0,
    missing        integer     NOT NULL DEFAULT 0,
    metrics        jsonb       NOT NULL DEFAULT '{}',
    per_class      jsonb       NOT NULL DEFAULT '{}',
    previous_id    text        NOT NULL DEFAULT '',
    deltas         jsonb       NOT NULL DEFAULT '{}',
    regressions    text[]      NOT NULL DEFAULT '{}',
    notes          text[]      NOT NULL DEFAULT '{}',
    evaluated_by   text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL
);
CREATE INDEX evaluations_golden ON evaluations (golden_sha256, created_at DESC);
CREATE INDEX evaluations_created ON evaluations (created_at DESC, evaluation_id);
CREATE INDEX evaluations_job ON evaluations (job_id);
