-- Where the daemon's watcher left off per IdP source: the newest `meta.lastModified` it
-- has seen (RFC 3339 text in UTC), so that a restart asks for what changed since then
-- rather than since the process started. Not part of the run chain: it records no finding.
CREATE TABLE watch_state (
    source TEXT PRIMARY KEY NOT NULL,
    watermark TEXT NOT NULL
) WITHOUT ROWID;
