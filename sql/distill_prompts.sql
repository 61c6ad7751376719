-- Prompts a distillation set may draw from: one row per prompt_id that some dataset puts
-- in split $split and that no dataset puts in the test split (test prompts never enter a
-- training set, not even as the source of a target), nor is an attacked variant of a
-- prompt some dataset puts in test (`prompts augment` keeps variants in their source's
-- split; this holds even if the source moved to test later). harmful: any dataset marks it
-- harmful. prompt: the user message as generation asks it (text, which already holds any
-- context), from the first dataset by name; dataset: that first dataset's name (retention
-- is spread over the benign datasets).
-- Parameters: $split.
WITH test_prompts AS (
    SELECT DISTINCT prompt_id FROM prompts WHERE split = 'test'
)
SELECT
    prompt_id,
    bool_or(harmful) AS harmful,
    arg_min(text, dataset) AS prompt,
    min(dataset) AS dataset
FROM prompts
GROUP BY prompt_id
HAVING bool_or(split = $split) AND NOT bool_or(split = 'test')
   AND NOT bool_or(attack IS NOT NULL AND source_ref IN (SELECT prompt_id FROM test_prompts))
ORDER BY prompt_id
