-- schema: log
-- Organisations on the log side (see 0060 for the read models).

-- An API key belongs to one organisation; keys made before belong to the default one.
ALTER TABLE api_keys ADD COLUMN org text NOT NULL DEFAULT 'default';
ALTER TABLE api_keys ADD COLUMN created_by text NOT NULL DEFAULT '';
CREATE INDEX api_keys_org ON api_keys (org, created_at DESC);

-- The audit trail (GET /audit) reads the archive by organisation and dataset. The archive
-- projector fills both from the event; events that record no organisation (a worker's
-- stage results) leave `org` NULL, and events from before organisations that do change
-- data count as the default organisation's.
ALTER TABLE event_log ADD COLUMN org text;
ALTER TABLE event_log ADD COLUMN dataset_id text;
CREATE INDEX event_log_org ON event_log (org, ms DESC, seq DESC) WHERE org IS NOT NULL;
CREATE INDEX event_log_dataset ON event_log (dataset_id, ms DESC, seq DESC)
    WHERE dataset_id IS NOT NULL;

-- Per-organisation limits that protect the GPU budget; set by the organisation's admin
-- (PUT /orgs/me/quota, `modomo org quota`), each change also recorded on the log as an
-- `org_quota_set` event. Not a read model: replay never touches it. 0: no limit.
CREATE TABLE org_quotas (
    org             text        PRIMARY KEY,
    scenes_per_day  integer     NOT NULL CHECK (scenes_per_day >= 0),
    updated_by      text        NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now()
);
