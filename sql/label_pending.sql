-- The answered responses of one run with their prompt text: what a judge model or the
-- learned labeler reads. Skipped prompts and null responses get no verdict. A prompt_id
-- stored under several datasets has one text (the id is a hash of it), so any_value.
-- Parameters:
--   $run_id  the run to judge
SELECT
    r.run_id,
    r.prompt_id,
    r.sample_index,
    p.text AS prompt,
    r.response
FROM responses AS r
LEFT JOIN (SELECT prompt_id, any_value(text) AS text FROM prompts GROUP BY prompt_id) AS p
    USING (prompt_id)
WHERE r.run_id = $run_id
  AND r.response IS NOT NULL
  AND r.finish_reason IS DISTINCT FROM 'skipped'
ORDER BY r.prompt_id, r.sample_index
