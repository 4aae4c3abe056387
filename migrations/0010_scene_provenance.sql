-- schema: read
-- Where each result came from: per stage, the model's id, the profile it was loaded with
-- (real weights or random ones) and a digest of its weights; and the original's ETag at
-- registration, which the worker checks before processing.
ALTER TABLE scenes ADD COLUMN model_refs jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE scenes ADD COLUMN etag text NOT NULL DEFAULT '';
