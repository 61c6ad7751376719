-- Per run and prompt of capability suite $suite: whether every instruction was followed
-- (strict, as 0/1) and the mean per-token KL from the base. `compare` resamples prompts
-- for the capability interval and averages kl_to_base per run.
-- Parameters: $runs (list of run ids), $suite.
SELECT run_id, key, strict::DOUBLE AS strict, kl_to_base
FROM capability
WHERE suite = $suite AND list_contains($runs, run_id)
ORDER BY run_id, key
