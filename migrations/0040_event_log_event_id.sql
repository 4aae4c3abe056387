-- schema: log
-- Exports accept an event id as their log position (`modomo export --as-of EVENT_ID`).
CREATE INDEX event_log_event_id ON event_log (event_id);
