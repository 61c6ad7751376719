-- The answered responses of some runs that a labeler has still to label, with their prompt
-- text: every answered response without a label of $labeler at version $version (all of
-- them when $force). Skipped prompts and null responses get no label. A prompt_id stored
-- under several datasets has one text (the id is a hash of it), so any_value.
-- Parameters:
--   $run_ids  VARCHAR[] of the runs to label (read in one pass, so many small runs cost one query)
--   $labeler  the labeler's stored name (ngram, learned:NAME, ...)
--   $version  the labeler's current version (labels.labeler_version; a null one is never current)
--   $force    true: every answered response, labelled or not
SELECT
    r.run_id,
    r.prompt_id,
    r.sample_index,
    p.text AS prompt,
    r.response
FROM responses AS r
LEFT JOIN (SELECT prompt_id, any_value(text) AS text FROM prompts GROUP BY prompt_id) AS p
    USING (prompt_id)
WHERE list_contains($run_ids, r.run_id)
  AND r.response IS NOT NULL
  AND r.finish_reason IS DISTINCT FROM 'skipped'
  AND ($force OR NOT EXISTS (
      SELECT 1 FROM labels AS l
      WHERE l.labeler = $labeler AND l.run_id = r.run_id AND l.prompt_id = r.prompt_id
        AND l.sample_index = r.sample_index AND l.labeler_version = $version))
ORDER BY r.run_id, r.prompt_id, r.sample_index
