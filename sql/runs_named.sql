-- Every stored run's id and name, oldest first: what run references (names, id
-- prefixes, globs) are resolved against (refusaldata.runs.select_runs).
-- No parameters.
SELECT run_id, any_value(name) AS name
FROM runs
GROUP BY run_id
ORDER BY min(created_at) NULLS FIRST, run_id
