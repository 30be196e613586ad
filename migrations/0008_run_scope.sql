-- Watched runs: a run the daemon's watcher made for the IdP users that changed, which
-- evaluated only the identities those users touch. `scope` holds what it evaluated, as
-- JSON: {"idp_users": [ids], "subjects": [{"target": "", "subject": "…"}, …]}, with
-- `target` empty for an Identity Center user. NULL for a full run, which evaluates
-- everything. A run's scope is part of its canonical record in the run chain.
ALTER TABLE runs ADD COLUMN scope TEXT;
