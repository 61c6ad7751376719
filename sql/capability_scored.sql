-- How many prompts of capability suite $suite each of the runs $runs has scored.
-- Parameters: $runs (list of run ids), $suite.
SELECT run_id, count(*) AS prompts
FROM capability
WHERE suite = $suite AND list_contains($runs, run_id)
GROUP BY run_id
