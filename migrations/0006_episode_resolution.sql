-- Why an episode ended. NULL while it is open, and for an episode a run resolved because
-- it no longer saw the finding ('not_seen', the rule until now); 'target_removed' when its
-- target left the configuration, so that nothing will evaluate it again: removed, not fixed.
-- Part of the run chain's record of the resolving run (see chain.rs).
ALTER TABLE episodes ADD COLUMN resolution TEXT;
