-- GET /api/activity filters by type, by status, or by both, newest first
-- (ORDER BY id DESC, pages by id < before). Each index ends in the rowid, so a
-- page walks only its own rows, newest first; without them a filter that few
-- rows match (status=started) read the whole table. idx_activity_type, from
-- 0001, serves type alone.
CREATE INDEX IF NOT EXISTS idx_activity_status ON activity(status);
CREATE INDEX IF NOT EXISTS idx_activity_type_status ON activity(type, status);
