-- The run chain covers what an auditor relies on in an episode, and only idgraph's own
-- migration decides which runs are old enough to be sealed after the fact.
--
-- episode_versions: the details of a finding as each run opened or changed it. The
-- `episodes` row holds the latest version for fast reads; every version is part of the
-- canonical record of the run that wrote it, so changing a name, id, superuser flag,
-- reason or severity anywhere in the history breaks the chain.
CREATE TABLE episode_versions (
    episode_id  INTEGER NOT NULL REFERENCES episodes (id),
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    kind        TEXT    NOT NULL,
    target      TEXT,
    db_user     TEXT,
    ic_user_id  TEXT,
    idp_user_id TEXT,
    user_name   TEXT,
    reason      TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    superuser   INTEGER NOT NULL CHECK (superuser IN (0, 1)),
    matched_by  TEXT,
    candidates  TEXT,
    PRIMARY KEY (episode_id, run_id)
) STRICT;

CREATE INDEX episode_versions_run ON episode_versions (run_id);

-- One row. Runs up to legacy_through_run were recorded before the chain existed and have
-- no hash yet: a writing idgraph seals them once and then clears the column. A run row
-- whose hash is NULL after that has been tampered with and is never sealed again.
-- Runs from details_from_run on are sealed with their episode versions.
CREATE TABLE chain_meta (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    legacy_through_run INTEGER,
    details_from_run   INTEGER NOT NULL
) STRICT;

INSERT INTO chain_meta (id, legacy_through_run, details_from_run)
SELECT 1,
       (SELECT max(id) FROM runs WHERE hash IS NULL),
       coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'runs'), 0) + 1;
