-- The tamper-evident run chain: each run row carries
--   hash = hex(SHA-256(previous run's hash ‖ canonical run record))
-- where the canonical record holds the run's times and status, its sources, the keys of
-- the episodes it opened and the ids of those it resolved (idgraph_store's chain module
-- defines the encoding). Stores created before this migration get their chain computed
-- when idgraph next opens them; NULL means "not sealed yet".
ALTER TABLE runs ADD COLUMN hash TEXT;
