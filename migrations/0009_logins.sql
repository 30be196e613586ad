-- Session activity (issue 15): the logins idgraph observes on each target, kept because
-- Redshift keeps its connection log for days only, and the evidence findings about logins
-- carry.

-- The login evidence of a `post_deprovisioning_login` or `dormant_db_user` finding: a JSON
-- object (idgraph_model::LoginEvidence); NULL for other kinds. Versions carry it too, and
-- runs from chain_meta.logins_from_run on hash it into the chain with the other details.
ALTER TABLE episodes ADD COLUMN logins TEXT;
ALTER TABLE episode_versions ADD COLUMN logins TEXT;
ALTER TABLE chain_meta ADD COLUMN logins_from_run INTEGER;
UPDATE chain_meta
SET logins_from_run = coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'runs'), 0) + 1;

-- Per target: since when idgraph has read its logins (the first run that did), and the
-- high-water mark of its connection log: the newest login time read, from which the next
-- run reads on. Outside the run chain, like the watcher's watermark: what it records is
-- evidence only through the findings that carry it.
CREATE TABLE login_targets (
    target        TEXT PRIMARY KEY NOT NULL,
    watched_since TEXT NOT NULL,
    high_water    TEXT
) STRICT, WITHOUT ROWID;

-- Per target and database user: when idgraph first saw the user (in a catalog, when
-- dormant users are watched, or in a login), and the first and last login it observed;
-- last_active is the last time it saw the user log in or hold a session. One row per
-- user, updated in place: it grows with the organisation, not with each run.
CREATE TABLE db_user_logins (
    target      TEXT NOT NULL,
    db_user     TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    first_login TEXT,
    last_login  TEXT,
    last_active TEXT,
    PRIMARY KEY (target, db_user)
) STRICT, WITHOUT ROWID;

-- The login events that matter: those of orphaned database users, so that the evidence
-- outlives the target's own retention and the session itself. One row per login (or
-- session, seen open by one run or several); `run_id` is the last run that saw it, and
-- retention removes it with that run.
CREATE TABLE login_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL,
    target      TEXT    NOT NULL,
    db_user     TEXT    NOT NULL,
    -- When the user authenticated or the session started; '' when the target hid it.
    at          TEXT    NOT NULL,
    -- The server process; -1 when unknown.
    process     INTEGER NOT NULL,
    database    TEXT,
    remote_host TEXT,
    application TEXT,
    auth_method TEXT,
    -- When idgraph last saw the session open; NULL for a login only a log recorded.
    open_at     TEXT,
    UNIQUE (target, db_user, at, process)
) STRICT;

CREATE INDEX login_events_run ON login_events (run_id);
