-- The runs rows of a fixture: each exported run's row, its config and versions as stored.
-- Parameters: $runs (list of run ids).
SELECT *
FROM runs
WHERE list_contains($runs, run_id)
ORDER BY run_id
