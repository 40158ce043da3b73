-- The file the dashboard last put in place at each path of the models folder,
-- with the SHA-256 it was verified against: when two presets write one path
-- with different files, this says whose file is there, across restarts. Size
-- and modification time tell when the file was replaced since.
CREATE TABLE IF NOT EXISTS model_files (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    modified_ns INTEGER NOT NULL,
    preset_id TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
