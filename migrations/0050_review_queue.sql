-- schema: read
-- What the review queue ranks by (GET /datasets/:id/review-queue, modomo/read/review_queue.py):
-- each detector's own category, so a disagreement between YOLO and GroundingDINO survives
-- the labeller renaming the object; the material model's margin between its top two
-- materials; and the object's dataset, so one index walks a dataset's queue in order.
-- Rows folded before this migration get their dataset here; the other three stay NULL until
-- `modomo replay scenes` rebuilds them from the log.
ALTER TABLE objects
    ADD COLUMN detect_category text,
    ADD COLUMN label_category  text,
    ADD COLUMN material_margin real,
    ADD COLUMN dataset_id      text;

UPDATE objects o SET dataset_id = s.dataset_id FROM scenes s WHERE s.scene_id = o.scene_id;

-- The queue's order; the expressions are those of modomo/read/review_queue.py, verbatim.
CREATE INDEX objects_review_queue ON objects (
    dataset_id,
    (floor(confidence * 100)::int),
    (CASE WHEN detect_category <> label_category THEN 0 ELSE 1 END),
    (coalesce(round(material_margin * 10000)::int, 10001)),
    object_id
);
