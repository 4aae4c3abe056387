-- schema: log
-- API keys for integrations. Only a hash of each secret is kept; `modomo apikey create`
-- prints the key once. Not a read model: replay never touches it.
CREATE TABLE api_keys (
    key_id      text        PRIMARY KEY,
    secret_hash text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    name        text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
