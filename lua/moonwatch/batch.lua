--- moonwatch.batch: the samples batch under its older name; new code requires
-- moonwatch.batch.samples (and moonwatch.batch.logs for log entries).
return require("moonwatch.batch.samples")
