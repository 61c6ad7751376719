-- How run $run answered each prompt of the view distill_prompts (distill_prompts.sql)
-- under labeler $labeler: refused when every labelled sample refused, and its first
-- compliant sample (index and text) otherwise. Skipped, empty and unlabelled responses
-- do not count; prompts the run never answered are absent.
-- Parameters: $run, $labeler.
WITH labelled AS (
    SELECT r.prompt_id, r.sample_index, r.response, l.refusal
    FROM responses r
    JOIN labels_of($labeler) l
      ON l.run_id = r.run_id AND l.prompt_id = r.prompt_id AND l.sample_index = r.sample_index
    WHERE r.run_id = $run AND l.refusal IS NOT NULL
      AND coalesce(trim(r.response), '') <> '' AND coalesce(r.finish_reason, '') <> 'skipped'
)
SELECT
    p.prompt_id,
    p.harmful,
    p.prompt,
    p.dataset,
    bool_and(a.refusal) AS refused,
    min(a.sample_index) FILTER (WHERE NOT a.refusal) AS compliant_sample_index,
    arg_min(a.response, a.sample_index) FILTER (WHERE NOT a.refusal) AS compliant_response
FROM distill_prompts p
JOIN labelled a USING (prompt_id)
GROUP BY p.prompt_id, p.harmful, p.prompt, p.dataset
ORDER BY p.prompt_id
