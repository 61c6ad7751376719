-- The distinct texts of the store's test-split prompts in every dataset but $dataset: what a
-- training-only prompt set (the shipped boundary look-alikes) must not repeat or nearly repeat.
-- Parameters: $dataset.
SELECT DISTINCT text
FROM prompts
WHERE split = 'test' AND dataset <> $dataset
ORDER BY text
