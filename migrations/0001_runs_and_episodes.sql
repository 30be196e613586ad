-- The idgraph drift history: runs, the sources each run read, and finding episodes.
--
-- History grows with drift, not with the size of the organisation: a run adds one `runs`
-- row and one `run_sources` row per source; `episodes` gains a row only when a finding
-- opens, and an episode row changes only when its finding's details change or it resolves.
--
-- Conventions:
-- * Times are RFC 3339 text in UTC with millisecond precision: 2026-11-27T10:00:00.000Z.
-- * Vocabulary columns (status, kind, reason, severity, matched_by) hold the model's
--   snake_case names. They carry no CHECK, so a new name needs no table rebuild; the store
--   rejects names it does not know when it reads them back.
-- * AUTOINCREMENT: run and episode ids are quoted in reports and alerts and are never reused.
-- * Migrations are never edited once released: change the schema with a new file.

-- One row per run. An episode's opened_at/resolved_at is the finished_at of its run.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  TEXT    NOT NULL,
    finished_at TEXT    NOT NULL,
    -- 'complete': every source was fetched; 'partial': at least one failed.
    status      TEXT    NOT NULL
) STRICT;

-- One row per source read by a run, e.g. the IdP, Identity Center, each Redshift target.
CREATE TABLE run_sources (
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    -- The source's configured name, unique within a run.
    name        TEXT    NOT NULL,
    -- What the source is, e.g. 'okta', 'identity_center', 'redshift'.
    kind        TEXT    NOT NULL,
    -- 'ok' or 'failed'.
    status      TEXT    NOT NULL,
    -- How many objects the snapshot held; NULL when the source failed before counting.
    objects     INTEGER CHECK (objects >= 0),
    -- The digest of the source's snapshot; NULL when there is no snapshot.
    digest      TEXT,
    -- Why the source failed; NULL when it did not.
    error       TEXT,
    duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
    PRIMARY KEY (run_id, name)
) STRICT, WITHOUT ROWID;

-- One row per finding episode: a finding opened in run `opened_run` and, once the finding
-- is no longer seen in an evaluated scope, resolved in run `resolved_run`. A finding that
-- comes back after being resolved opens a new episode. The columns are the model's Finding.
CREATE TABLE episodes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT    NOT NULL,
    -- The Redshift target; NULL for Identity Center findings.
    target       TEXT,
    -- The database user exactly as the catalog holds it; NULL for Identity Center findings.
    db_user      TEXT,
    ic_user_id   TEXT,
    idp_user_id  TEXT,
    user_name    TEXT,
    reason       TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    superuser    INTEGER NOT NULL CHECK (superuser IN (0, 1)),
    matched_by   TEXT,
    -- For ambiguous mappings: a JSON array of Identity Center user ids; NULL when none.
    candidates   TEXT,
    opened_run   INTEGER NOT NULL REFERENCES runs (id),
    resolved_run INTEGER REFERENCES runs (id),
    CHECK (resolved_run IS NULL OR resolved_run > opened_run)
) STRICT;

-- At most one open episode per finding key (kind, target, subject), the key of
-- idgraph_model::Finding::key: the target or '' and the database user, else the Identity
-- Center user id, else ''. Also the index of the open-episode lookup every run does.
CREATE UNIQUE INDEX episodes_open_key
    ON episodes (kind, coalesce(target, ''), coalesce(db_user, ic_user_id, ''))
    WHERE resolved_run IS NULL;

-- The history of one database user.
CREATE INDEX episodes_db_user ON episodes (db_user) WHERE db_user IS NOT NULL;

-- What a run opened and resolved: per-run counts and run reports.
CREATE INDEX episodes_opened_run ON episodes (opened_run);
CREATE INDEX episodes_resolved_run ON episodes (resolved_run) WHERE resolved_run IS NOT NULL;
