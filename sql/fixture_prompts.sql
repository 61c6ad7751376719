-- The prompts rows of a fixture: every data set's row of each sampled prompt.
-- Parameters: $prompts (list of the sampled prompt ids).
SELECT *
FROM prompts
WHERE list_contains($prompts, prompt_id)
ORDER BY dataset, prompt_id
