-- Whether an import would merge into an existing data set: how many prompts data set $dataset
-- holds already, and how many of the incoming prompts it does not hold yet. An import that
-- would add prompts to a data set that already has some is refused unless asked to append.
-- Parameters: $dataset (the data set written to); reads the registered relation
-- `incoming_prompts` (a prompt_id column).
SELECT
    (SELECT count(*) FROM prompts WHERE dataset = $dataset) AS stored,
    (SELECT count(DISTINCT i.prompt_id) FROM incoming_prompts AS i
     WHERE NOT EXISTS (SELECT 1 FROM prompts AS p WHERE p.dataset = $dataset AND p.prompt_id = i.prompt_id)) AS new
