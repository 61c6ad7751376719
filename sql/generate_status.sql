-- How far generation run $run_id has got. Its selection: the prompts of datasets $datasets
-- (a list; NULL for an imported run, which selects none) and split $split ('all' for every
-- split); answered: those with all $n samples stored (sample_index < $n).
-- Returns one row: prompts, answered, rows (responses stored), skipped (stored as too long),
-- first_written and last_written (created_at of its responses).
WITH selected AS (
    SELECT DISTINCT prompt_id
    FROM prompts
    WHERE list_contains($datasets, dataset) AND ($split = 'all' OR split = $split)
), stored AS (
    SELECT prompt_id, count(DISTINCT sample_index) FILTER (sample_index < $n) AS samples
    FROM responses
    WHERE run_id = $run_id
    GROUP BY prompt_id
), written AS (
    SELECT count(*) AS rows, count(*) FILTER (finish_reason = 'skipped') AS skipped,
           min(created_at) AS first_written, max(created_at) AS last_written
    FROM responses
    WHERE run_id = $run_id
)
SELECT (SELECT count(*) FROM selected) AS prompts,
       (SELECT count(*) FROM selected JOIN stored USING (prompt_id) WHERE stored.samples >= $n) AS answered,
       written.rows, written.skipped, written.first_written, written.last_written
FROM written
