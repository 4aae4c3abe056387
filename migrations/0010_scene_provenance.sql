-- schema: read
-- Where each result came from: per stage, the model's id, the profile it was loaded with
-- (real weights or random ones) and a digest of its weights.
ALTER TABLE scenes ADD COLUMN model_refs jsonb NOT NULL DEFAULT '{}'::jsonb;
