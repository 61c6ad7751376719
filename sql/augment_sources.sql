-- The prompts of one data set as `prompts augment` attacks them, one row per prompt_id.
-- split: the prompt's own split, made 'test' when any data set puts the prompt, or the
-- unattacked prompt it comes from, in test (a test prompt's variants stay in test).
-- root: the unattacked prompt a variant is paired with: the prompt itself, or, for a row
-- that is already an attacked variant, its source_ref (so attacks compose onto one root).
-- Parameters: $source (the data set's name).
WITH in_test AS (
    SELECT prompt_id, bool_or(split = 'test') AS test
    FROM prompts
    GROUP BY prompt_id
),
chosen AS (
    SELECT prompt_id, category, text, harmful, split, attack,
           CASE WHEN attack IS NULL THEN prompt_id ELSE source_ref END AS root
    FROM prompts
    WHERE dataset = $source
)
SELECT c.prompt_id, c.category, c.text, c.harmful,
       CASE WHEN t.test OR coalesce(r.test, false) THEN 'test' ELSE c.split END AS split,
       c.attack, c.root
FROM chosen c
JOIN in_test t USING (prompt_id)
LEFT JOIN in_test r ON r.prompt_id = c.root
ORDER BY c.prompt_id
