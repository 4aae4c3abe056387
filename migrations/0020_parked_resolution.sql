-- schema: read
-- Operators act on parked events: retry one after a fix, or skip it. A resolved row stays,
-- as the record of what was decided; `attempts` counts how often it failed to apply.
ALTER TABLE parked_events
    ADD COLUMN resolved_at timestamptz,
    ADD COLUMN resolution  text CHECK (resolution IN ('retried', 'skipped')),
    ADD COLUMN attempts    integer NOT NULL DEFAULT 1;
CREATE INDEX parked_events_open ON parked_events (projector) WHERE resolved_at IS NULL;

-- Bumped whenever something other than the active instance's own batches changed a
-- projector's tables (an operator's retry of a parked event, a replay's swap), so that
-- instance drops what it remembers between batches.
ALTER TABLE projector_checkpoints ADD COLUMN generation bigint NOT NULL DEFAULT 0;
