-- What `label` has to do in each run: its answered responses, how many of them hold a
-- label of $labeler at version $version (current), and how many rows the (labeler, run)
-- partition holds. A run whose answered responses are all current and whose partition
-- holds nothing else is skipped without reading it again.
-- Parameters:
--   $run_ids  VARCHAR[] of the runs to label
--   $labeler  the labeler's stored name
--   $version  the labeler's current version (labels.labeler_version)
WITH answered AS (
    SELECT run_id, prompt_id, sample_index
    FROM responses
    WHERE list_contains($run_ids, run_id) AND response IS NOT NULL AND finish_reason IS DISTINCT FROM 'skipped'
),
held AS (
    SELECT run_id, prompt_id, sample_index, labeler_version
    FROM labels
    WHERE labeler = $labeler AND list_contains($run_ids, run_id)
),
counts AS (
    SELECT a.run_id, count(*) AS answered, count(h.run_id) FILTER (h.labeler_version = $version) AS current
    FROM answered a
    LEFT JOIN held h USING (run_id, prompt_id, sample_index)
    GROUP BY a.run_id
)
SELECT r.run_id, coalesce(c.answered, 0)::BIGINT AS answered, coalesce(c.current, 0)::BIGINT AS current,
    (SELECT count(*) FROM held h WHERE h.run_id = r.run_id)::BIGINT AS held
FROM unnest($run_ids) AS r(run_id)
LEFT JOIN counts c USING (run_id)
ORDER BY r.run_id
