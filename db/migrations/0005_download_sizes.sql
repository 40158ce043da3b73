-- What each download fetched and why it failed, for the download history page:
-- bytes done and to do, and the error's code beside its message. Rows written
-- before this migration have NULLs here.
ALTER TABLE download_history ADD COLUMN bytes_done INTEGER;
ALTER TABLE download_history ADD COLUMN bytes_total INTEGER;
ALTER TABLE download_history ADD COLUMN error_code TEXT;
