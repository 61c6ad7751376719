-- The responses rows of a fixture: every sample of the exported runs on the sampled prompts.
-- Parameters: $runs (list of run ids), $prompts (list of the sampled prompt ids).
SELECT *
FROM responses
WHERE list_contains($runs, run_id) AND list_contains($prompts, prompt_id)
ORDER BY run_id, prompt_id, sample_index
