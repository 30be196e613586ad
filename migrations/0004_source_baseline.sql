-- The last complete snapshot of each source is the baseline a new snapshot is compared
-- with (a source that shrank far below it is suspicious): the newest `ok` row per name.
CREATE INDEX run_sources_ok ON run_sources (name, run_id) WHERE status = 'ok';
