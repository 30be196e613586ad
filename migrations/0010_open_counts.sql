-- What the finding gauges show after every run, full or watched: how many episodes are open
-- per kind, severity and target, and the earliest run that opened one. Counted from this
-- index alone (it covers the query), so a watched run that touches one person does not
-- read every open episode to set the gauges.
CREATE INDEX episodes_open_counts
    ON episodes (kind, severity, target, opened_run)
    WHERE resolved_run IS NULL;
