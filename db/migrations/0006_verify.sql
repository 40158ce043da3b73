-- Uninstall and verify. A download_history row is an install (it fetched a
-- preset's missing files) or a verify (it checksummed the files in place);
-- rows from before are installs.
ALTER TABLE download_history ADD COLUMN kind TEXT NOT NULL DEFAULT 'install';

-- Files a verify found not to match the SHA-256 they should have. Size and
-- modification time are the file's when it was checked: a file replaced since
-- (a repair, or by hand) no longer matches them and is no longer known to be
-- corrupt. A repair that lands and a verify that passes remove the row.
CREATE TABLE IF NOT EXISTS corrupt_files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    modified_ns INTEGER NOT NULL,
    expected_sha256 TEXT NOT NULL,
    actual_sha256 TEXT NOT NULL,
    found_at TEXT NOT NULL
);
