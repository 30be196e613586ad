-- Retention cuts the oldest runs away; the chain then starts from a checkpoint: the hash
-- of the last pruned run, which the first remaining run was sealed on. One row at most,
-- moved forward by each prune.
CREATE TABLE chain_checkpoint (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    -- The last run removed; the chain resumes at the next run.
    after_run INTEGER NOT NULL,
    -- That run's hash.
    hash      TEXT    NOT NULL
) STRICT;
