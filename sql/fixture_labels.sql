-- The labels rows of a fixture: every labeler's verdicts (refusal, unsafe, human) on the
-- exported runs' responses to the sampled prompts.
-- Parameters: $runs (list of run ids), $prompts (list of the sampled prompt ids).
SELECT *
FROM labels
WHERE list_contains($runs, run_id) AND list_contains($prompts, prompt_id)
ORDER BY labeler, run_id, prompt_id, sample_index
