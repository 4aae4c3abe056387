-- schema: read
-- Read models folded from the event log. Every table here can be dropped and rebuilt by
-- `modomo replay`; nothing writes them but the projectors.

CREATE TABLE projector_checkpoints (
    name         text        PRIMARY KEY,
    position     text        NOT NULL,
    events_seen  bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Events a projector could not apply, with the reason; the projector went on past them.
CREATE TABLE parked_events (
    projector   text        NOT NULL,
    entry_id    text        NOT NULL,
    event_type  text        NOT NULL,
    reason      text        NOT NULL,
    payload     bytea       NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projector, entry_id)
);

CREATE TABLE datasets (
    dataset_id   text        PRIMARY KEY,
    name         text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    created_by   text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL
);

CREATE TABLE jobs (
    job_id         text        PRIMARY KEY,
    dataset_id     text        NOT NULL,
    status         text        NOT NULL,
    total          integer     NOT NULL,
    queued         integer     NOT NULL,
    running        integer     NOT NULL,
    ok             integer     NOT NULL DEFAULT 0,
    partial        integer     NOT NULL DEFAULT 0,
    failed         integer     NOT NULL DEFAULT 0,
    stages         jsonb       NOT NULL,
    resize_max_px  integer     NOT NULL,
    created_by     text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    started_at     timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX jobs_dataset ON jobs (dataset_id);
CREATE INDEX jobs_status ON jobs (status);
CREATE INDEX jobs_created ON jobs (created_at DESC, job_id);

CREATE TABLE job_scenes (
    job_id       text        NOT NULL,
    scene_id     text        NOT NULL,
    status       text        NOT NULL,
    attempt      integer     NOT NULL DEFAULT 0,
    phase        smallint    NOT NULL DEFAULT 0,
    stages       text[]      NOT NULL DEFAULT '{}',
    errors       jsonb       NOT NULL DEFAULT '[]',
    objects      integer     NOT NULL DEFAULT 0,
    avg_conf     real        NOT NULL DEFAULT 0,
    stage_ms     jsonb       NOT NULL DEFAULT '{}',
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (job_id, scene_id)
);
CREATE INDEX job_scenes_status ON job_scenes (job_id, status);

CREATE TABLE scenes (
    scene_id          text        PRIMARY KEY,
    dataset_id        text        NOT NULL,
    r2_key_original   text        NOT NULL,
    content_type      text        NOT NULL DEFAULT 'image/jpeg',
    size_bytes        bigint      NOT NULL DEFAULT 0,
    filename          text        NOT NULL DEFAULT '',
    registered_at     timestamptz NOT NULL,
    status            text        NOT NULL DEFAULT 'registered',
    last_job_id       text,
    scene_type        text,
    scene_type_conf   real,
    scene_type_model  text,
    style_model       text,
    width             integer,
    height            integer,
    detect_model      text,
    label_model       text,
    segment_model     text,
    depth_key         text,
    depth_near        real,
    depth_far         real,
    depth_model       text,
    material_model    text,
    caption           text,
    caption_model     text,
    palette           jsonb,
    palette_model     text,
    object_count      integer     NOT NULL DEFAULT 0,
    avg_conf          real        NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX scenes_dataset ON scenes (dataset_id, scene_id);
CREATE INDEX scenes_scene_type ON scenes (scene_type);
CREATE INDEX scenes_status ON scenes (status);
CREATE INDEX scenes_palette ON scenes USING gin (palette jsonb_path_ops);

CREATE TABLE scene_styles (
    scene_id    text NOT NULL,
    style_code  text NOT NULL,
    score       real NOT NULL,
    model       text NOT NULL,
    PRIMARY KEY (scene_id, style_code)
);
CREATE INDEX scene_styles_style_code ON scene_styles (style_code);

CREATE TABLE objects (
    object_id      text        PRIMARY KEY,
    scene_id       text        NOT NULL,
    category_code  text        NOT NULL,
    confidence     real        NOT NULL,
    bbox           real[]      NOT NULL,
    label          text        NOT NULL DEFAULT '',
    source         text        NOT NULL,
    model          text        NOT NULL,
    mask_key       text,
    thumb_key      text,
    area           real,
    segment_model  text,
    attrs          jsonb       NOT NULL DEFAULT '{}',
    corrected_by   text,
    corrected_at   timestamptz
);
CREATE INDEX objects_scene ON objects (scene_id);
CREATE INDEX objects_category_code ON objects (category_code);
CREATE INDEX objects_confidence ON objects (confidence);
CREATE INDEX objects_attrs ON objects USING gin (attrs jsonb_path_ops);

CREATE TABLE object_materials (
    object_id      text    NOT NULL,
    material_code  text    NOT NULL,
    scene_id       text    NOT NULL,
    score          real    NOT NULL,
    model          text    NOT NULL,
    PRIMARY KEY (object_id, material_code)
);
CREATE INDEX object_materials_material_code ON object_materials (material_code);
CREATE INDEX object_materials_scene ON object_materials (scene_id);

CREATE TABLE reviews (
    review_id   text        PRIMARY KEY,
    scene_id    text        NOT NULL,
    object_id   text,
    verdict     text        NOT NULL,
    note        text        NOT NULL DEFAULT '',
    reviewer    text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL
);
CREATE INDEX reviews_scene ON reviews (scene_id);
CREATE INDEX reviews_object ON reviews (object_id) WHERE object_id IS NOT NULL;
