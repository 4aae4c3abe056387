-- schema: log
-- The archive of every event ever appended to the Redis log, so streams can be trimmed and
-- the history still replays. One row per stream entry; (ms, seq) is the entry id.
CREATE TABLE event_log (
    ms        bigint      NOT NULL,
    seq       bigint      NOT NULL,
    event_id  text        NOT NULL,
    type      text        NOT NULL,
    job_id    text,
    at        timestamptz NOT NULL,
    v         integer     NOT NULL,
    payload   bytea       NOT NULL,
    PRIMARY KEY (ms, seq)
);
CREATE INDEX event_log_type ON event_log (type);
CREATE INDEX event_log_job ON event_log (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX event_log_at ON event_log (at);

-- Where the archive projector stands in the Redis log (it never swaps with the read models).
CREATE TABLE log_checkpoints (
    name         text        PRIMARY KEY,
    position     text        NOT NULL,
    events_seen  bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
