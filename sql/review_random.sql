-- A seeded uniform sample of the chosen runs' responses, for a person to label blind
-- (`refusaldata review export --random N`): no machine verdict or score is shown, so the
-- person's verdicts measure each labeler's accuracy on the corpus (`review accuracy`).
-- Every stored response with text counts once, whatever its run (responses generation
-- skipped are left out); the sample is the $size responses with the smallest
-- hash(run_id, prompt_id, sample_index, $seed), so a seed gives the same sample again.
-- Columns: the review file's, and `sample` ('random:<seed>'), which `review import` keeps.
-- Parameters:
--   $run_ids  the runs (VARCHAR[])
--   $size     how many responses
--   $seed     the sample's seed (BIGINT)
SELECT
    r.run_id,
    r.prompt_id,
    r.sample_index,
    p.text AS prompt,
    r.response,
    NULL::VARCHAR AS verdict,
    NULL::DOUBLE AS score,
    NULL::VARCHAR AS human_verdict,
    'random:' || $seed AS sample
FROM responses r
LEFT JOIN (SELECT prompt_id, any_value(text) AS text FROM prompts GROUP BY prompt_id) p USING (prompt_id)
WHERE list_contains($run_ids, r.run_id)
  AND r.finish_reason IS DISTINCT FROM 'skipped'
  AND coalesce(trim(r.response), '') <> ''
ORDER BY hash(r.run_id, r.prompt_id, r.sample_index, $seed::BIGINT), r.run_id, r.prompt_id, r.sample_index
LIMIT $size
