-- schema: log
-- One active instance per projector, by a lease row with an expiry rather than a session
-- advisory lock, so it also works through a transaction-mode pooler. The active instance
-- renews it in every batch's transaction; a standby takes it once it has expired.
CREATE TABLE projector_leases (
    name         text        PRIMARY KEY,
    holder       text        NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

ALTER TABLE log_checkpoints ADD COLUMN generation bigint NOT NULL DEFAULT 0;
