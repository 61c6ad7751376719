-- The two runs a gate compares: what names them in its table.
-- Parameters: $runs (list of run ids).
SELECT run_id, name, model
FROM runs
WHERE list_contains($runs, run_id)
